//! The object store attachment bytes go to: a local directory unless an S3-compatible bucket is
//! configured. Both are `object_store` implementations, so everything above this file is one code
//! path.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;

use crate::config::Config;

/// The directory local attachments go to: `attachments.dir`, or `attachments` beside the
/// embedded store's files.
pub fn local_dir(config: &Config) -> PathBuf {
    if config.attachments.dir.as_os_str().is_empty() {
        config.store.path.join("attachments")
    } else {
        config.attachments.dir.clone()
    }
}

/// Opens the configured object store. S3 credentials come from the standard `AWS_*` environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...), never from the file.
pub fn open(config: &Config) -> Result<Arc<dyn ObjectStore>, String> {
    let a = &config.attachments;
    if !a.s3_bucket.is_empty() {
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&a.s3_bucket);
        if !a.s3_region.is_empty() {
            b = b.with_region(&a.s3_region);
        }
        if !a.s3_endpoint.is_empty() {
            b = b
                .with_endpoint(&a.s3_endpoint)
                .with_allow_http(a.s3_endpoint.starts_with("http://"));
        }
        return b
            .build()
            .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            .map_err(|e| format!("attachments.s3_bucket: {e}"));
    }
    let dir = local_dir(config);
    std::fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "cannot create the attachments directory {}: {e}",
            dir.display()
        )
    })?;
    LocalFileSystem::new_with_prefix(&dir)
        .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        .map_err(|e| format!("attachments directory {}: {e}", dir.display()))
}
