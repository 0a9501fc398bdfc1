//! The HTML of `/device`: the code entry form and the "signed in" page, in the same plain
//! style as the hub's other pages ([`crate::oidc::error::page`]).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::oidc::error::escape_html;

/// `Content-Security-Policy` of the device pages: no scripts, no framing (a framed,
/// pre-filled form is a clickjacking target). `form-action` is left open on purpose: the
/// form's response redirects to the upstream IdP, and some browsers check redirects of a
/// form submission against `form-action`.
const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

/// The code entry form posting to `action`, pre-filled with `user_code`, with an optional
/// error message above it.
pub fn entry(action: &str, user_code: &str, error: Option<&str>) -> Html<String> {
    let error = error
        .map(|message| {
            format!(
                "<p role=\"alert\"><strong>{}</strong></p>",
                escape_html(message)
            )
        })
        .unwrap_or_default();
    let (action, user_code) = (escape_html(action), escape_html(user_code));
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in a device</title></head>\
         <body><h1>Sign in a device</h1>{error}\
         <p>Enter the code shown in your terminal by <code>tetherctl login --no-browser</code>.</p>\
         <p>Only enter a code from a terminal you started yourself: that terminal receives your access.</p>\
         <form method=\"post\" action=\"{action}\">\
         <label for=\"user_code\">Code</label> \
         <input id=\"user_code\" name=\"user_code\" value=\"{user_code}\" placeholder=\"BCDF-GHJK\" \
         autocomplete=\"off\" autocapitalize=\"characters\" spellcheck=\"false\" maxlength=\"32\" required autofocus> \
         <button type=\"submit\">Continue</button></form></body></html>\n"
    ))
}

/// The page shown after the upstream login approved a device.
pub fn signed_in(username: &str) -> Html<String> {
    let username = escape_html(username);
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signed in</title></head>\
         <body><h1>Signed in</h1><p>Signed in as {username}. You can return to your terminal.</p></body></html>\n"
    ))
}

/// `html` with `status`, not cached, not framable, no referrer to other sites (the page's
/// own URL may carry `?user_code=`).
pub fn respond(status: StatusCode, html: Html<String>) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    // `same-origin`, not `no-referrer`: with `no-referrer` a browser sends `Origin: null`
    // on the form POST, and the POST's same-origin check needs the real origin.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
