//! Loopback ports picked at run time.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Mutex;

use crate::error::{Error, Result};

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port on 127.0.0.1 that is free now and was not handed out before by this process
/// (so parallel tests in one binary do not collide). Bounded: 50 attempts.
pub fn free_port() -> Result<u16> {
    for _ in 0..50 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(Error::io("binding 127.0.0.1:0 to pick a free port"))?;
        let port = l
            .local_addr()
            .map_err(Error::io("reading the picked port"))?
            .port();
        let mut guard = HANDED_OUT
            .lock()
            .map_err(|_| Error::Failed("port registry poisoned".into()))?;
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    Err(Error::Failed(
        "no free port on 127.0.0.1 after 50 attempts".into(),
    ))
}

/// Fails at once, naming `part`, if `port` on 127.0.0.1 cannot be bound now.
pub fn ensure_port_free(part: &str, port: u16) -> Result<()> {
    match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::PortInUse {
            part: part.to_string(),
            port,
        }),
    }
}

/// `port` if given (checked free), else a fresh [`free_port`].
pub fn port_for(part: &str, port: Option<u16>) -> Result<u16> {
    match port {
        Some(p) => {
            ensure_port_free(part, p)?;
            Ok(p)
        }
        None => free_port(),
    }
}
