"""The composition root: the Faust app, the runtime wiring, breaker events, the dev stack, the CLI.

Nothing imports this package (``tests/unit/test_architecture.py`` enforces it): it is where the
layers below (``agents`` < ``services`` < ``stores`` < ``streams`` < ``schemas``) are put together
into a worker process and the ``ragstream`` command.
"""
