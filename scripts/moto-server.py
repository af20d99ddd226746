#!/usr/bin/env python3
"""moto_server, with one fix: SigV4 signatures are checked against the request target as sent.

moto (5.2.1; getmoto/moto issue 5948, open) verifies a signature against werkzeug's
request.url, which percent-decodes the query string and part of the path (%2F -> /, %2B -> +,
%3D -> =). Every correctly signed request whose canonical URI or query string holds such an
escape then fails with 403 SignatureDoesNotMatch although S3 accepts it: ListObjectsV2 with
prefix=a/ or delimiter=/, and keys with + = : and the like. pgbackd lists by prefix all the
time, so here moto's signature check sees the raw request target (RAW_URI) instead. Nothing
else moto does changes. Arguments are moto_server's; scripts/services.sh always starts moto
this way, so the tests sign as pgbackd signs for AWS.
"""
import contextvars
import sys

from moto import server
from moto.iam import access_control
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

# Each request runs in its own thread (threaded werkzeug): carry its raw target to the check.
_raw_target: contextvars.ContextVar = contextvars.ContextVar("raw_target", default=None)

_dispatch = DomainDispatcherApplication.__call__


def _dispatch_keeping_raw_target(self, environ, start_response):
    _raw_target.set(environ.get("RAW_URI"))
    return _dispatch(self, environ, start_response)


_request_init = access_control.IAMRequestBase.__init__


# `path` only feeds the canonical request that the signature is computed over.
def _request_init_raw(self, account_id, method, path, data, body, headers, action):
    raw = _raw_target.get()
    if raw and raw.startswith("/"):
        path = raw
    _request_init(self, account_id, method, path, data, body, headers, action)


DomainDispatcherApplication.__call__ = _dispatch_keeping_raw_target
access_control.IAMRequestBase.__init__ = _request_init_raw

if __name__ == "__main__":
    server.main(sys.argv[1:])
