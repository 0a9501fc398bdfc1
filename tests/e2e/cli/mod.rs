//! People log in with kubectl (issue 7): `tetherctl login` completed in headless Chromium at
//! the real IdP, the kubeconfig it writes, the credential plugin under the real kubectl
//! (one shared refresh for parallel calls), an account locked at the IdP, and logout.

mod env;
mod login;
