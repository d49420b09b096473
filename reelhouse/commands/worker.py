"""`reelhouse worker`: the transcode worker process (started by `reelhouse up`)."""
from __future__ import annotations

import logging

import click


@click.command("worker")
def worker() -> None:
    """Consume transcode jobs from the bus until SIGTERM (finishing the job in hand)."""
    from media_workers.worker import serve
    from reelhouse.bootstrap import bootstrap
    from reelhouse.settings import Settings

    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    platform = bootstrap(settings)
    try:
        serve(platform)
    finally:
        platform.close()
