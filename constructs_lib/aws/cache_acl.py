"""The ElastiCache access string of the service's cache user (no aws_cdk import: the service
tests import it to run the service's cache client as that user against a real redis-server).

Least privilege for what service/webapi uses, and nothing else:

- keys: ``login:fail:*`` (the login throttle), ``signup:*`` (the sign-up throttle) and
  ``user:v1:*`` (the read-through user cache);
- data commands: GET, SET (with EX), DEL, and the Lua scripts of ``webapi.cache``, which
  redis-py runs with EVALSHA, loading them with SCRIPT LOAD on NOSCRIPT (EVAL is never sent);
  the commands the scripts call (INCR, DECR, EXPIRE, TTL, GET) are checked against the ACL too;
- PING (the health check);
- the cluster client's start-up: CLUSTER SLOTS (the slot map) and COMMAND (its command table).
  HELLO and AUTH need no grant; redis-py ignores a refused CLIENT SETINFO, which is left out
  because Redis OSS 7.0/7.1 do not know that subcommand and would refuse the whole string.

``-@all`` keeps FLUSHALL, KEYS, CONFIG, EVAL and every other command refused. Subcommand rules
(``+script|load``, ``+cluster|slots``) are Redis 6 ACL syntax that Redis 7 and Valkey keep.

tests/service/test_cache_acl.py reads the commands webapi.cache sends out of its source and
fails on one this list does not grant (or a grant nothing sends); tests/service/test_cache.py
runs the service's whole cache behaviour as this user.
"""

from __future__ import annotations

KEY_PATTERNS = ("login:fail:*", "signup:*", "user:v1:*")
COMMANDS = (
    "ping",
    "get",
    "set",
    "del",
    "evalsha",
    "script|load",
    "incr",
    "decr",
    "expire",
    "ttl",
    "cluster|slots",
    "command",
)
APP_ACCESS_STRING = " ".join(
    ["on", *(f"~{pattern}" for pattern in KEY_PATTERNS), "-@all", *(f"+{command}" for command in COMMANDS)]
)
# The switched-off "default" user a Redis OSS user group must hold: it can run nothing.
DEFAULT_USER_ACCESS_STRING = "off -@all"
