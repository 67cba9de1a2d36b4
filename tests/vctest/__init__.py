"""Helpers shared by the end-to-end suites (tests/sip, tests/pjsua2, tests/baresip,
tests/browser, ...): start the real `voice-connector serve` binary, provision it through its
AWS-compatible API with boto3, and find free loopback ports.

A package rather than conftest code: every suite folder has its own conftest.py, and
`import conftest` would pick whichever one pytest loaded first. tests/ is on sys.path
because pytest inserts the directory of the root tests/conftest.py, so `import vctest`
works from any test module or conftest under tests/.
"""
