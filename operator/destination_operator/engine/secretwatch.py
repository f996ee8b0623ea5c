"""The operator's own Secret watch: every Secret's uid and resourceVersion, never its data.

kopf can only watch whole objects, and a cluster's Secrets are mostly not the
operator's (Helm keeps every release in one, up to 1 MiB). So the operator
lists and watches Secrets as metadata only (`kube.secretmeta`) and keeps, per
Secret, its uid and resourceVersion (`SecretIndex`); the data of a Secret a
Destination names is read apart, when its resourceVersion moves
(`probes.Probes.refresh`).

One `SecretWatch` per watched scope (every namespace, or each of
`settings.namespaces`): list in pages, then watch from the list's
resourceVersion with bookmarks; a 410 Gone lists again; a dropped connection
or a busy API server watches again after a backoff. Its task is named as kopf
names its watchers, so `/healthz` (`watchhealth`) reports it when it ends: a
refusal that a retry cannot change (403, a non-metadata answer) ends it.

The engine's workers wait until every scope has been listed once, so an
existing Secret is never reported missing at start, as kopf's index promised.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from destination_operator import backoff
from destination_operator.engine.cache import Key
from destination_operator.engine.watchhealth import WATCHER_PREFIX
from destination_operator.kube import secretmeta
from destination_operator.kube.client import ApiUnavailable
from destination_operator.kube.secretmeta import Expired, SecretMeta, WatchEvent

__all__ = ["SecretIndex", "SecretWatch", "Seen", "watch_secrets"]

logger = logging.getLogger("destination_operator")

WATCH_SECONDS = (300, 600)
"""How long one watch request lasts, drawn at random (as client-go does) so watches spread."""
RETRY_BASE, RETRY_CAP = 0.5, 30.0
# How long 401/403 answers in a row are retried before the watch ends (and /healthz
# says so): a restarted kube-apiserver refuses until its RBAC cache is filled, which
# takes seconds; a grant that is missing for good stays missing.
FORBIDDEN_GRACE = 60.0


class Seen(NamedTuple):
    """A Secret as the watch last saw it."""

    uid: str
    version: str


class SecretIndex:
    """Every watched Secret's uid and resourceVersion, by (namespace, name).

    `on_change` is told the key of each Secret created, changed or deleted.
    `scopes` are the watches that must list once before `listed()` is done
    (None: every namespace); none, and it is done at once.
    """

    def __init__(self, scopes: Iterable[str | None] = ()) -> None:
        self._seen: dict[Key, Seen] = {}
        self._pending = set(scopes)
        self._listed = asyncio.Event()
        if not self._pending:
            self._listed.set()
        self.on_change: Callable[[str, str], None] = lambda _namespace, _name: None

    def __len__(self) -> int:
        return len(self._seen)

    def get(self, namespace: str, name: str) -> Seen | None:
        return self._seen.get((namespace, name))

    @property
    def is_listed(self) -> bool:
        return self._listed.is_set()

    async def listed(self) -> None:
        """Returns once every scope has been listed."""
        await self._listed.wait()

    def apply(self, event: WatchEvent) -> None:
        """One watch event."""
        secret = event.secret
        if secret is None:
            return
        key = (secret.namespace, secret.name)
        if event.type == "DELETED":
            if self._seen.pop(key, None) is not None:
                self.on_change(*key)
            return
        seen = Seen(secret.uid, secret.version)
        if self._seen.get(key) != seen:
            self._seen[key] = seen
            self.on_change(*key)

    def replace(self, scope: str | None, items: Iterable[SecretMeta]) -> None:
        """A (re)list of `scope`: its Secrets are these now; each one that changed is told."""
        fresh = {(s.namespace, s.name): Seen(s.uid, s.version) for s in items}
        gone = [key for key in self._seen if scope is None or key[0] == scope]
        changed = [key for key in gone if key not in fresh]
        for key in changed:
            del self._seen[key]
        for key, seen in fresh.items():
            if self._seen.get(key) != seen:
                self._seen[key] = seen
                changed.append(key)
        self._pending.discard(scope)
        if not self._pending:
            self._listed.set()
        for key in changed:
            self.on_change(*key)


class SecretWatch:
    """Keeps `index` true for one scope: list, watch, list again when the watch expires."""

    def __init__(
        self,
        index: SecretIndex,
        scope: str | None,
        pool: ThreadPoolExecutor,
        rng: random.Random | None = None,
        page_size: int = secretmeta.PAGE_LIMIT,
        forbidden_grace: float = FORBIDDEN_GRACE,
    ) -> None:
        self.index = index
        self.forbidden_grace = forbidden_grace
        self.scope = scope
        self._pool = pool
        self.page_size = page_size
        self._rng = rng or random.Random()

    @property
    def task_name(self) -> str:
        """As kopf names a watcher: `watchhealth` finds it by this name."""
        return f"{WATCHER_PREFIX}secrets.v1@{self.scope}"

    async def run(self) -> None:
        """Forever: a refusal a retry cannot change ends it (`watchhealth` reports that)."""
        version: str | None = None
        failures = 0
        forbidden_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                if version is None:
                    version = await self._list()
                version = await self._watch(version)
                failures, forbidden_since = 0, None
            except Expired:
                logger.info("Secret watch (%s) expired; listing again", self.scope or "all")
                version = None
            except (ApiUnavailable, secretmeta.Forbidden) as err:
                if isinstance(err, secretmeta.Forbidden):
                    forbidden_since = forbidden_since or loop.time()
                    if loop.time() - forbidden_since >= self.forbidden_grace:
                        raise
                failures += 1
                delay = backoff.next_delay(failures, RETRY_BASE, RETRY_CAP, self._rng)
                logger.info("Secret watch (%s): %s; again in %.1fs", self.scope, err, delay)
                await asyncio.sleep(delay)

    async def _list(self) -> str:
        """Every Secret of the scope, page by page; the list's resourceVersion."""
        loop = asyncio.get_running_loop()
        items: list[SecretMeta] = []
        token = ""
        while True:
            page = await loop.run_in_executor(
                self._pool, secretmeta.list_page, self.scope, token, self.page_size
            )
            items += page.items
            token = page.next
            if not token:
                break
        self.index.replace(self.scope, items)
        logger.debug("Secret watch (%s): listed %d Secrets", self.scope or "all", len(items))
        return page.version

    async def _watch(self, version: str) -> str:
        """Watch from `version` until the API server ends the watch; the last version seen.
        Events are read in a thread of the pool and applied in the event loop."""
        loop = asyncio.get_running_loop()
        seconds = self._rng.randint(*WATCH_SECONDS)

        def stream() -> str:
            last = version
            for event in secretmeta.watch(self.scope, version, seconds):
                loop.call_soon_threadsafe(self.index.apply, event)
                last = event.version or last
            return last

        return await loop.run_in_executor(self._pool, stream)


def watch_secrets(
    scopes: Sequence[str | None], page_size: int = secretmeta.PAGE_LIMIT
) -> tuple[SecretIndex, list[asyncio.Task[None]]]:
    """An index of `scopes`' Secrets and the running watches that keep it (call in the
    event loop; cancel the tasks to stop). The lists come in pages of `page_size`
    (the operator's `list_chunk_size`), never more than `secretmeta.PAGE_LIMIT`."""
    index = SecretIndex(scopes)
    pool = ThreadPoolExecutor(max_workers=len(scopes), thread_name_prefix="secret-watch")
    tasks = []
    for scope in scopes:
        watch = SecretWatch(index, scope, pool, page_size=page_size)
        tasks.append(asyncio.create_task(watch.run(), name=watch.task_name))
    return index, tasks
