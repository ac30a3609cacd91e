"""Sending one request on, byte for byte: http.client, so the path, query and body go out exactly as they came."""

from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

# RFC 9110 §7.6.1 connection-specific fields, plus what the proxy must set itself (Host, Content-Length).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class ForwardError(Exception):
    """The destination could not be reached, did not answer in time, or answered something that is not HTTP."""

    def __init__(
        self, message: str, kind: Literal["unreachable", "timeout", "not-http", "too-large", "untrusted"]
    ) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")


@dataclass(frozen=True)
class Destination:
    """Scheme, host, port and base path of a URL; TLS trust for https."""

    scheme: str
    host: str
    port: int
    base_path: str
    netloc: str

    @classmethod
    def parse(cls, url: str) -> Destination:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), netloc)

    def url(self, target: str) -> str:
        return f"{self.scheme}://{self.netloc}{self.base_path}{target}"


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::", ""})


def same_address(host: str, port: int, other_host: str, other_port: int) -> bool:
    """Whether two host:port pairs name one listener (every loopback or wildcard spelling counts as one)."""
    host, other_host = host.strip("[]").lower(), other_host.strip("[]").lower()
    return port == other_port and (host == other_host or {host, other_host} <= LOOPBACK)


def end_to_end(headers: list[tuple[str, str]] | dict[str, str]) -> list[tuple[str, str]]:
    """Headers without the hop-by-hop ones, including those the Connection header names."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    named = {t.strip().lower() for k, v in items if k.lower() == "connection" for t in v.split(",")}
    return [(k, v) for k, v in items if k.lower() not in HOP_BY_HOP and k.lower() not in named]


def send(
    dest: Destination,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    timeout: float,
    tls: ssl.SSLContext | None,
    max_answer: int = 64 * 1024 * 1024,
) -> Answer:
    """One request on a fresh connection (closed after it): nothing added but Host and Content-Length.

    `timeout` bounds the whole exchange, not each socket read: a destination trickling a byte now and then
    must not hold a server thread for ever. An answer over `max_answer` bytes is abandoned, not buffered.
    """
    deadline = time.monotonic() + timeout
    if dest.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            dest.host, dest.port, timeout=timeout, context=tls or ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(dest.host, dest.port, timeout=timeout)
    try:
        conn.putrequest(method, dest.base_path + target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", dest.netloc)
        for name, value in headers:
            conn.putheader(name, value)
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        sock = conn.sock  # the response keeps reading from it even after http.client lets go of the connection
        response = conn.getresponse()
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the answer took longer than {timeout:g} s")
            if sock is not None:
                sock.settimeout(left)
            chunk = response.read1(65536)  # de-chunked, never decompressed: the client gets the server's encoding
            if not chunk:
                break
            size += len(chunk)
            if size > max_answer:
                raise ForwardError(f"the answer is larger than {max_answer} bytes; abandoned", "too-large")
            chunks.append(chunk)
        return Answer(response.status, response.reason, response.getheaders(), b"".join(chunks))
    except TimeoutError as exc:
        raise ForwardError(f"no answer within {timeout:g} s ({exc})", "timeout") from exc
    except (http.client.BadStatusLine, http.client.LineTooLong, http.client.IncompleteRead) as exc:
        raise ForwardError(
            f"the answer is not valid HTTP ({type(exc).__name__}: {str(exc)[:200]!r})", "not-http"
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        raise ForwardError(f"its TLS certificate is not trusted ({exc.verify_message})", "untrusted") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ForwardError(f"{type(exc).__name__}: {exc}", "unreachable") from exc
    finally:
        conn.close()


def tls_context(ca_bundle: str | None, insecure: bool) -> ssl.SSLContext:
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
