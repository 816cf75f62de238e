//! Where webhooks may be sent. Loopback, private, link-local and other internal addresses are
//! refused (a webhook must not become a way into the operator's network) unless the server
//! runs with `--webhook-allow-private`: a literal address in the URL is checked when the
//! endpoint is registered and again at every delivery, and a name is resolved at delivery
//! through [`PublicOnly`], which keeps only public addresses (so a name that later resolves
//! inward is refused too). Redirects are not followed.

use std::net::{IpAddr, SocketAddr};

use reqwest::Url;

/// Longest URL an endpoint may have.
pub const MAX_URL: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("the url is not an absolute http or https URL")]
    NotHttp,
    #[error(
        "the url carries credentials; put them in the receiver's check of the signature instead"
    )]
    Credentials,
    #[error("the url points to a loopback, private or internal address; webhooks go to public addresses")]
    Private,
}

/// Whether `ip` is an address a webhook must not reach: loopback, private, link-local, shared
/// (carrier-grade NAT), unspecified, broadcast, documentation, multicast, or the IPv6 forms of
/// these.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
        }
    }
}

/// Checks an endpoint URL: absolute http(s), no credentials, and unless `allow_private` no
/// literal internal address nor `localhost`.
pub fn check(url: &str, allow_private: bool) -> Result<Url, TargetError> {
    let parsed = Url::parse(url.trim()).map_err(|_| TargetError::NotHttp)?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(TargetError::NotHttp);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::Credentials);
    }
    if !allow_private {
        let internal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => is_internal(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => is_internal(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost")
            }
            None => true,
        };
        if internal {
            return Err(TargetError::Private);
        }
    }
    Ok(parsed)
}

/// A resolver that keeps only public addresses: a name that resolves only inward fails to
/// resolve, so the delivery fails (and is retried) instead of reaching inside.
#[derive(Debug, Clone, Copy)]
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| !is_internal(address.ip()))
                .collect();
            if addresses.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_and_public_ones_taken() {
        for refused in [
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://api.localhost/hook",
            "http://10.1.2.3/",
            "http://172.20.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert_eq!(
                check(refused, false),
                Err(TargetError::Private),
                "{refused}"
            );
            assert!(
                check(refused, true).is_ok(),
                "{refused} with private addresses allowed"
            );
        }
        assert!(check("https://hooks.example.com/subdesk", false).is_ok());
        assert!(check("http://8.8.8.8/", false).is_ok());
        assert_eq!(
            check("ftp://example.com/", false),
            Err(TargetError::NotHttp)
        );
        assert_eq!(check("/relative", false), Err(TargetError::NotHttp));
        assert_eq!(
            check("https://user:pw@example.com/", false),
            Err(TargetError::Credentials)
        );
    }
}
