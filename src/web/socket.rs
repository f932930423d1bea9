//! The event loop's sockets: a listening socket and an accepted connection, Unix or TCP,
//! in non-blocking mode (mio), behind one type each. Nothing here decides anything.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::pool::Peer;

/// A listening socket in non-blocking mode.
pub enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Listener::Unix(l) => l,
            Listener::Tcp(l) => l,
        }
    }

    pub fn accept(&self) -> io::Result<(Stream, Peer)> {
        Ok(match self {
            Listener::Unix(l) => (Stream::Unix(l.accept()?.0), Peer::Unix),
            Listener::Tcp(l) => {
                let (s, addr) = l.accept()?;
                // Answers are small and written whole: send them at once.
                let _ = s.set_nodelay(true);
                (Stream::Tcp(s), Peer::Tcp(addr))
            }
        })
    }
}

pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Unix(s) => s,
            Stream::Tcp(s) => s,
        }
    }

    pub fn shutdown_write(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
        };
    }

    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }

    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
}
