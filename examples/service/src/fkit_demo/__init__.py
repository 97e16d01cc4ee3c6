"""fkit-demo: fkit's example service (FastAPI, dishka, a Unit of Work, locks, metrics, traces).

Run it with ``uv run fkit-demo`` from the repository root. The modules, each one concept:

- ``models``: the tables (fkit-types' base, mixins and column types);
- ``repositories``, ``uow``: repositories and the Unit of Work with advisory locks;
- ``services``: the SERIALIZABLE transfer and the settle-orders job;
- ``schemas``, ``api``: the HTTP interface; ``container``, ``app``: the wiring;
- ``tracing``: spans as one console line each, or counted;
- ``database``, ``serve``, ``workload``, ``summary``, ``__main__``: the command.
"""
