//! Request parameters (query string or form body) and client authentication.
//!
//! RFC 6749 §3.1: a parameter sent without a value is treated as omitted, and a
//! parameter must not be included more than once.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use tether_common::secret::Secret;

use super::error::OAuthError;

/// The most parameters a request may carry.
const MAX_PARAMS: usize = 64;

/// Parsed request parameters: no repeats, empty values dropped.
#[derive(Clone, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (a query string or a form body).
    pub fn parse(encoded: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (count, (name, value)) in url::form_urlencoded::parse(encoded).enumerate() {
            if count >= MAX_PARAMS {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
            if value.is_empty() {
                continue;
            }
            if map
                .insert(name.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {} is repeated",
                    printable(&name)
                )));
            }
        }
        Ok(Self(map))
    }

    /// Query string and form body together (GET-or-POST endpoints); a name in both is a
    /// repeat.
    pub fn parse_both(query: Option<&str>, body: &[u8]) -> Result<Self, OAuthError> {
        let mut params = Self::parse(query.unwrap_or_default().as_bytes())?;
        for (name, value) in Self::parse(body)?.0 {
            if params.0.insert(name.clone(), value).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {} is repeated",
                    printable(&name)
                )));
            }
        }
        Ok(params)
    }

    /// A parameter, if present and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required parameter; missing is `invalid_request`.
    pub fn required(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name}")))
    }
}

impl std::fmt::Debug for Params {
    /// Names only: values may be codes, tokens or secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Params").field("names", &names).finish()
    }
}

/// A parameter name safe to echo in a description (bounded, visible ASCII).
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(40)
        .collect()
}

/// What the client presented to authenticate (RFC 6749 §2.3.1).
#[derive(Debug)]
pub struct ClientCredentials {
    /// The client id.
    pub client_id: String,
    /// The secret (`client_secret_basic` or `client_secret_post`); `None` for public
    /// clients.
    pub secret: Option<Secret>,
    /// Whether HTTP Basic was used (an `invalid_client` answer then carries a challenge).
    pub basic: bool,
}

impl ClientCredentials {
    /// Reads `Authorization: Basic` or `client_id` (+ `client_secret`) from the form.
    /// Using both methods at once is `invalid_request`; neither is `invalid_client`.
    pub fn from_request(headers: &HeaderMap, params: &Params) -> Result<Self, OAuthError> {
        let basic = match headers.get(header::AUTHORIZATION) {
            Some(value) => {
                let value = value.to_str().map_err(|_| {
                    OAuthError::invalid_client("malformed Authorization header", true)
                })?;
                match value.split_once(' ') {
                    Some((scheme, credentials)) if scheme.eq_ignore_ascii_case("basic") => {
                        Some(parse_basic(credentials.trim())?)
                    }
                    _ => None,
                }
            }
            None => None,
        };
        let post_secret = params.get("client_secret");
        match basic {
            Some((client_id, secret)) => {
                if post_secret.is_some() {
                    return Err(OAuthError::invalid_request(
                        "use one client authentication method, not Basic and client_secret",
                    ));
                }
                if params.get("client_id").is_some_and(|id| id != client_id) {
                    return Err(OAuthError::invalid_request(
                        "client_id does not match the Basic credentials",
                    ));
                }
                Ok(Self {
                    client_id,
                    secret: Some(secret),
                    basic: true,
                })
            }
            None => {
                let client_id = params.get("client_id").ok_or_else(|| {
                    OAuthError::invalid_client("client authentication required", false)
                })?;
                Ok(Self {
                    client_id: client_id.to_owned(),
                    secret: post_secret.map(Secret::new),
                    basic: false,
                })
            }
        }
    }
}

/// `base64(urlencode(id) ":" urlencode(secret))`.
fn parse_basic(credentials: &str) -> Result<(String, Secret), OAuthError> {
    let malformed = || OAuthError::invalid_client("malformed Basic credentials", true);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| -> Result<String, OAuthError> {
        let plus_as_space = s.replace('+', " ");
        url::form_urlencoded::parse(format!("x={plus_as_space}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .ok_or_else(malformed)
    };
    let id = unescape(id)?;
    if id.is_empty() {
        return Err(malformed());
    }
    Ok((id, Secret::new(unescape(secret)?)))
}

/// The bearer token of `Authorization: Bearer ...` (RFC 6750 §2.1).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::oidc::error::OAuthErrorCode;

    #[test]
    fn repeats_are_refused_and_empty_values_dropped() {
        let params = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), None);
        assert_eq!(params.get("c"), Some("x y"));
        let err = Params::parse(b"a=1&a=2").unwrap_err();
        assert_eq!(err.code(), OAuthErrorCode::InvalidRequest);
        assert!(Params::parse_both(Some("a=1"), b"a=2").is_err());
        assert_eq!(
            Params::parse(b"")
                .unwrap()
                .required("code")
                .unwrap_err()
                .description(),
            "missing parameter code"
        );
        assert!(!format!("{params:?}").contains('1'));
    }

    #[test]
    fn basic_and_post_credentials() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("my%20app:s%3Acret");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        let creds = ClientCredentials::from_request(&headers, &Params::default()).unwrap();
        assert_eq!(creds.client_id, "my app");
        assert_eq!(creds.secret.unwrap().expose(), "s:cret");
        assert!(creds.basic);

        let both = Params::parse(b"client_secret=x").unwrap();
        let err = ClientCredentials::from_request(&headers, &both).unwrap_err();
        assert_eq!(err.code(), OAuthErrorCode::InvalidRequest);

        let post = Params::parse(b"client_id=app&client_secret=s").unwrap();
        let creds = ClientCredentials::from_request(&HeaderMap::new(), &post).unwrap();
        assert_eq!((creds.client_id.as_str(), creds.basic), ("app", false));

        let err =
            ClientCredentials::from_request(&HeaderMap::new(), &Params::default()).unwrap_err();
        assert_eq!(err.code(), OAuthErrorCode::InvalidClient);
    }

    #[test]
    fn bearer_tokens() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
    }
}
