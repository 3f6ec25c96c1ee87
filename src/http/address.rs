//! Who is on the other end, as an address: what the per-address limits (connection attempts,
//! failed authentications) count by.

use std::net::{IpAddr, SocketAddr};

use warp::http::HeaderMap;

/// The client's address: from `header` when one is configured (`http.client_ip_header`, set by a
/// trusted reverse proxy; the first entry of a list such as `X-Forwarded-For`), else the TCP
/// peer. `None` when neither gives an address (then no per-address limit applies).
pub fn client_ip(peer: Option<SocketAddr>, headers: &HeaderMap, header: &str) -> Option<IpAddr> {
    if !header.is_empty() {
        return headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
    }
    peer.map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_unless_a_proxy_header_is_configured() {
        let peer: SocketAddr = "10.0.0.9:5000".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        assert_eq!(
            client_ip(Some(peer), &h, ""),
            Some(peer.ip()),
            "not trusted by default"
        );
        assert_eq!(
            client_ip(Some(peer), &h, "x-forwarded-for"),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(client_ip(Some(peer), &HeaderMap::new(), "x-real-ip"), None);
        h.insert("x-real-ip", "not an address".parse().unwrap());
        assert_eq!(client_ip(Some(peer), &h, "x-real-ip"), None);
    }
}
