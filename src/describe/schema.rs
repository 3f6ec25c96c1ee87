//! Schemas for the types whose serde code is written by hand, so no derive can see their wire
//! shape: snowflake ids (decimal strings, numbers accepted on input) and the marketplace's
//! external ids (strings of at most 64 characters, numbers accepted on input).

use std::borrow::Cow;

use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::domain::user::{ExternalId, MAX_EXTERNAL_ID_LEN};
use crate::domain::Id;

impl PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]{1,20}$"))
                    .description(Some(
                        "a 64-bit id as a decimal string (how the server writes it)",
                    )),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .description(Some("accepted on input only")),
            )
            .description(Some(
                "A time-ordered 64-bit id (snowflake). Written as a decimal string; a JSON \
                 number is accepted on input.",
            ))
            .examples(["7412983412383748096"])
            .into()
    }
}

impl ToSchema for Id {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Id")
    }
}

impl PartialSchema for ExternalId {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(MAX_EXTERNAL_ID_LEN)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("accepted on input only")),
            )
            .description(Some(
                "An id owned by the marketplace (user, service, provider): an opaque string of \
                 1 to 64 characters without control characters. A JSON number is accepted on \
                 input and answered as a string.",
            ))
            .examples(["user-42"])
            .into()
    }
}

impl ToSchema for ExternalId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ExternalId")
    }
}
