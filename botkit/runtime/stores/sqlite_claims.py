"""The SQLite store's claims, kept out of the database: a lock of the process for each
claim in flight (:class:`ClaimLocks`) and a filter of the keys ever answered
(:class:`AnsweredKeys`), both in the ``<database>-claims`` file next to it."""

from __future__ import annotations

import errno
import hashlib
import math
import mmap
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple, Protocol

from .base import Entry, StoreConfigError, logger

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX (Windows): the SQLite store says so
    fcntl = None  # type: ignore[assignment]


def lock_offset(key: str) -> int:
    """Where in the claims file the lock of ``key``'s claim is: a 62-bit hash of it."""
    # Two keys in flight at one offset would share a lock: with 62 bits, a chance
    # of about n * n / 2**63 for n claims in flight.
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2  # under 2**62: a valid file offset


class HeldClaim(NamedTuple):
    """A claim this process holds."""

    fingerprint: str
    expires_at: float  # on the store's clock
    offset: int  # of its lock: see lock_offset


class ClaimLocks:
    """This process's claims on one SQLite store: a byte-range lock (``fcntl``) for each,
    at :func:`lock_offset` of its key in a file next to the database
    (``<database>-claims``).

    A claim is the one thing every worker must see before a handler runs, and writing it
    to the database was the largest part of what the SQLite store cost per webhook (a
    write transaction between processes, each invalidating the others' page caches). A
    lock is one system call, held in the kernel, and let go by the kernel when its
    process ends, however it ends: a claim of a killed worker is free at once, not after
    ``BOTKIT_CLAIM_TTL``.

    POSIX locks belong to a process, not to a thread or a file descriptor: a process
    taking a range it holds succeeds again, and closing *any* descriptor of the file lets
    go of all its locks on it. So there is one of these per file and process (stores
    opened on the same file share it; its descriptor is closed when the last one closes),
    and ``held`` tells the process's own claims apart. An expired claim of this process
    can be taken over by a copy reaching this process; another process's claim lasts
    until it answers, lets go, or ends.
    """

    def __init__(self, file_id: tuple[int, int], fd: int) -> None:
        self.file_id = file_id  # the file's (device, inode): its key in _CLAIM_LOCKS
        self.fd = fd
        try:
            self.answered_keys: AnsweredKeys | None = AnsweredKeys(fd)
        except (OSError, ValueError) as exc:  # no mmap here: every claim reads the answers
            logger.debug("sqlite store: no filter of answered keys in %d: %s", fd, exc)
            self.answered_keys = None
        self.mutex = threading.Lock()
        #: This process's claims, by key.
        self.held: dict[str, HeldClaim] = {}
        self.users = 0

    def _try_lock(self, offset: int) -> bool:
        """Take the lock at ``offset``; False when another process holds it."""
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            return False
        return True

    def try_claim(
        self, key: str, offset: int, fingerprint: str, expires_at: float, now: float
    ) -> Entry | None:
        """None when this call now holds ``key`` (whose lock is at ``offset``); else the
        claim in the way: this process's own (with its fingerprint), or another
        process's (``fingerprint``: which body it is for, this process cannot see)."""
        # The note first, under the mutex, the lock outside it: a thread holding the mutex
        # through a system call (which lets go of the GIL) would hold up every claim of
        # the process. Meanwhile a copy claiming the key here finds the note and waits.
        with self.mutex:
            mine = self.held.get(key)
            if mine is not None:
                if mine.expires_at > now:
                    return Entry(mine.fingerprint, None, None)
                # expired, and the lock still ours: taken over
                self.held[key] = HeldClaim(fingerprint, expires_at, mine.offset)
                return None
            note = self.held[key] = HeldClaim(fingerprint, expires_at, offset)
        locked = False
        try:
            locked = self._try_lock(offset)
        finally:
            if not locked:  # another process's claim (or an error): not ours after all
                self._forget(key, note)
        return None if locked else Entry(fingerprint, None, None)

    def _forget(self, key: str, note: HeldClaim) -> None:
        with self.mutex:
            if self.held.get(key) is note:
                del self.held[key]

    def release(self, key: str, fingerprint: str | None = None) -> None:
        """Let go of this process's claim of ``key`` (only if it is for ``fingerprint``,
        when one is given)."""
        with self.mutex:
            mine = self.held.get(key)
            if mine is None or (fingerprint is not None and mine.fingerprint != fingerprint):
                return
            # Let go outside the mutex (see try_claim); until then the key stays noted,
            # as never expiring, so that a copy here waits instead of taking a lock that
            # is about to go.
            note = self.held[key] = HeldClaim(mine.fingerprint, math.inf, mine.offset)
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, mine.offset)
        finally:
            self._forget(key, note)

    def claimed_entry(self, key: str, now: float) -> Entry | None:
        """The live claim of ``key``: this process's, another process's (fingerprint
        ``""``: not known here), or None."""
        with self.mutex:
            mine = self.held.get(key)
            if mine is not None:
                return Entry(mine.fingerprint, None, None) if mine.expires_at > now else None
            offset = lock_offset(key)
            if not self._try_lock(offset):
                return Entry("", None, None)
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, offset)
            return None

    def release_expired(self, now: float) -> None:
        """Let go of this process's claims that expired (a handler that never answered)."""
        with self.mutex:
            for key, claim in list(self.held.items()):
                if claim.expires_at <= now:
                    del self.held[key]
                    fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, claim.offset)

    def reset_after_fork(self) -> None:
        # In a child of fork(): it holds none of its parent's locks (POSIX locks are not
        # inherited). The descriptor is the same file's and stays in use.
        self.mutex = threading.Lock()
        self.held = {}
        if self.answered_keys is not None:
            self.answered_keys.mutex = threading.Lock()


class FilterDatabase(Protocol):
    """What :class:`AnsweredKeys` reads and writes in its store's database."""

    def filter_id(self) -> bytes | None: ...

    def set_filter_id(self, value: bytes) -> None: ...

    def latest_expiry(self) -> float: ...


class Region(NamedTuple):
    """The header's fields of one region of :class:`AnsweredKeys`."""

    live: bool  # writers set its bits
    started: float
    read_until: float  # the last time claims may have read it; 0: not since it started
    horizon: float  # the latest expiry in the database when it started
    keys: int  # set in it


class AnsweredKeys:
    """Which keys were ever answered in one SQLite store, roughly: a bit per hash of a
    key (24 bits of it), in the ``<database>-claims`` file, mapped into the memory of
    every process that uses the store. A claim whose key's bit is clear was never
    answered and skips its read of the answers, a large part of a claim's cost; a set
    bit may be another key's (more often the more keys the region holds), and that
    claim reads as before.

    A bit is set after its answer is committed and before its claim is let go, so
    whoever takes the lock next sees it. Bits are never cleared one by one. The file
    holds two regions of bits: claims read one, and once it holds ``FILL`` keys the
    other is started afresh. Writers set the bits of every live region, so a region
    lacks only the answers stored before it started, and claims read it only once
    every one of those has expired: past its ``horizon``, the latest expiry in the
    database when it started. Then the old region is let go. So the filter never calls
    a live answer unanswered, whatever the file held before: next to a database full
    of answers, a new ``-claims`` file is read only once they have expired.

    The file's header names its database (an id also kept in the database's
    ``botkit_meta``): the file of another database, or one whose bits may be missing
    (a write of them that failed), is started afresh. Writers of the filter take turns
    on a lock of the process and a byte-range lock of the file; claims take no lock.
    A region claims no longer read is cleared for reuse only ``QUIET`` seconds later,
    and a look at a bit that took over a second is not believed.
    """

    #: Bits per region (2 MiB), and keys in the region claims read before the next starts.
    BITS = 1 << 24
    FILL = BITS // 8
    #: Seconds between the last claim that may read a region and its bits being cleared.
    QUIET = 60.0
    HEADER = 4096
    #: The header's first 8 bytes: set up, or its bits may be missing (start afresh).
    HEADER_READY = b"bkanswd1"
    HEADER_BROKEN = b"bkanswd!"
    _READ_REGION_AT = 8  # one byte: 1 + the region claims read; 0 for none
    _DATABASE_ID_AT = 16  # 16 bytes: the database's id of this file (botkit_meta)
    _REGIONS_AT = 64  # region i's fields at _REGIONS_AT + 64 * i
    _REGION_FIELDS = struct.Struct("<?7xdddQ")  # a Region
    #: The offset of the writers' lock: past every claim's (hashes are under 2**62).
    WRITERS_LOCK_AT = 1 << 62

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.region_bytes = self.BITS >> 3
        length = self.HEADER + 2 * self.region_bytes
        if os.fstat(fd).st_size < length:
            os.ftruncate(fd, length)
        # mmap keeps a duplicate of fd, and closing any descriptor of the file lets go
        # of the process's locks on it: it is closed with the claims' descriptor only.
        self.mapped = mmap.mmap(fd, length)
        self.mutex = threading.Lock()
        #: The header was found to be this database's: claims may believe the bits.
        self.trusted = False

    def surely_unanswered(self, offset: int) -> bool:
        """Whether the key whose claim lock is at ``offset`` was surely never answered
        (to be asked while holding that lock)."""
        if not self.trusted:
            return False
        mapped = self.mapped
        started = time.monotonic()
        try:
            region = mapped[self._READ_REGION_AT] - 1
            if region != 0 and region != 1:
                return False
            bit = offset & (self.BITS - 1)
            byte = mapped[self.HEADER + region * self.region_bytes + (bit >> 3)]
        except ValueError:  # closed with its store meanwhile
            return False
        if time.monotonic() - started > 1.0:  # held up: the region may be reused since
            return False
        return not byte & (1 << (bit & 7))

    def mark_answered(self, offsets: list[int]) -> None:
        """Set the bits of answers just committed, before their claims are let go."""
        try:
            with self._writers_turn():
                mapped = self.mapped
                if not self.header_ready():
                    return  # not set up: when it is, its horizon covers these answers
                for index in (0, 1):
                    region = self.region(index)
                    if not region.live:
                        continue
                    base = self.HEADER + index * self.region_bytes
                    for offset in offsets:
                        bit = offset & (self.BITS - 1)
                        mapped[base + (bit >> 3)] |= 1 << (bit & 7)
                    self._set_region(index, region._replace(keys=region.keys + len(offsets)))
        except Exception as exc:
            # Answers are in the file without their bits: no claim may believe it now.
            try:
                self.mapped[self._READ_REGION_AT] = 0
                self.mapped[0:8] = self.HEADER_BROKEN
            except ValueError:  # closed with its store: nothing reads it here any more
                pass
            logger.warning("sqlite store: the filter of answered keys is off for now: %s", exc)

    def maintain(self, database: FilterDatabase, now: float) -> None:
        """Set the header up for ``database``, have claims read the newest region that
        holds every live answer, and start a region afresh when needed. On the answers'
        thread, every ``SQLITE_CHECKPOINT_EVERY`` seconds."""
        with self._writers_turn():
            known = database.filter_id()  # in here: another process may be setting it up
            mapped = self.mapped
            if not self.header_ready() or self.database_id() != known:
                # Claims may have read these bits until now, unless it was never set up.
                fresh = mapped[0:8] == bytes(8)
                self.trusted = False
                mapped[self._READ_REGION_AT] = 0
                new = os.urandom(16)
                database.set_filter_id(new)  # the database first: see the class
                mapped[self._DATABASE_ID_AT : self._DATABASE_ID_AT + 16] = new
                for index in (0, 1):
                    self._set_region(index, Region(False, 0.0, 0.0 if fresh else now, 0.0, 0))
                mapped[0:8] = self.HEADER_READY
            self.trusted = True
            regions = [self.region(0), self.region(1)]
            read = self.region_read()
            ready = [
                index
                for index, region in enumerate(regions)
                if region.live and now > region.horizon and now >= region.started + 1.0
            ]
            if ready:
                newest = max(ready, key=lambda index: regions[index].started)
                if newest != read:
                    mapped[self._READ_REGION_AT] = newest + 1
                    if read is not None:  # let go of the old one
                        self._set_region(read, regions[read]._replace(live=False, read_until=now))
                        regions[read] = self.region(read)
                    read = newest
            live = [index for index in (0, 1) if regions[index].live]
            if live and not (read in live and len(live) == 1 and regions[read].keys >= self.FILL):
                return
            for index, region in enumerate(regions):
                if not region.live and (
                    region.read_until == 0.0 or now - region.read_until >= self.QUIET
                ):
                    self._start_region(index, database, now)
                    return

    def _start_region(self, index: int, database: FilterDatabase, now: float) -> None:
        base = self.HEADER + index * self.region_bytes
        self.mapped[base : base + self.region_bytes] = bytes(self.region_bytes)
        # Live before the latest expiry is read: an answer committed after that read
        # sets its bit here (its writer waits for this lock), one before is under it.
        self._set_region(index, Region(True, now, 0.0, math.inf, 0))
        try:
            horizon = database.latest_expiry()
        except BaseException:
            self._set_region(index, Region(False, now, 0.0, math.inf, 0))  # never read: reused
            raise
        self._set_region(index, Region(True, now, 0.0, horizon, 0))

    def header_ready(self) -> bool:
        """Whether the file's header is set up (for some database)."""
        return self.mapped[0:8] == self.HEADER_READY

    def database_id(self) -> bytes:
        """The id of the database the header was set up for (see ``botkit_meta``)."""
        return self.mapped[self._DATABASE_ID_AT : self._DATABASE_ID_AT + 16]

    def region_read(self) -> int | None:
        """The region claims read (0 or 1), or None while they read none."""
        read = self.mapped[self._READ_REGION_AT] - 1
        return read if read in (0, 1) else None

    def region(self, index: int) -> Region:
        """The header's fields of region ``index`` (0 or 1)."""
        return Region._make(self._REGION_FIELDS.unpack_from(self.mapped, self._region_at(index)))

    def _set_region(self, index: int, region: Region) -> None:
        self._REGION_FIELDS.pack_into(self.mapped, self._region_at(index), *region)

    def _region_at(self, index: int) -> int:
        return self._REGIONS_AT + 64 * index

    @contextmanager
    def _writers_turn(self) -> Iterator[None]:
        with self.mutex:
            fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, self.WRITERS_LOCK_AT)
            try:
                yield
            finally:
                fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self.WRITERS_LOCK_AT)

    def close(self) -> None:
        self.mapped.close()


#: The claim locks of each store file, by (device, inode), in this process.
_CLAIM_LOCKS: dict[tuple[int, int], ClaimLocks] = {}
_CLAIM_LOCKS_MUTEX = threading.Lock()


def _claim_locks_after_fork() -> None:
    global _CLAIM_LOCKS_MUTEX
    _CLAIM_LOCKS_MUTEX = threading.Lock()
    for locks in _CLAIM_LOCKS.values():
        locks.reset_after_fork()


os.register_at_fork(after_in_child=_claim_locks_after_fork)


def open_claim_locks(database: str) -> ClaimLocks:
    """The claim locks of the store file at ``database``, shared in this process."""
    if fcntl is None:  # pragma: no cover - Windows
        raise StoreConfigError("the sqlite store needs POSIX file locks (fcntl); use memory://")
    path = database + "-claims"
    with _CLAIM_LOCKS_MUTEX:
        try:
            found_stat = os.stat(path)
        except FileNotFoundError:
            pass
        else:  # never open a second descriptor of a file whose locks we hold: see above
            found = _CLAIM_LOCKS.get((found_stat.st_dev, found_stat.st_ino))
            if found is not None:
                found.users += 1
                return found
        try:
            mode = os.stat(database).st_mode & 0o666
        except OSError:
            mode = 0o644
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
        opened = os.fstat(fd)
        file_id = (opened.st_dev, opened.st_ino)
        locks = _CLAIM_LOCKS[file_id] = ClaimLocks(file_id, fd)
        locks.users += 1
        return locks


def close_claim_locks(locks: ClaimLocks) -> None:
    """Stop using ``locks``; the last user closes the file."""
    with _CLAIM_LOCKS_MUTEX:
        locks.users -= 1
        if locks.users > 0:
            return
        del _CLAIM_LOCKS[locks.file_id]
        if locks.answered_keys is not None:
            locks.answered_keys.close()
        os.close(locks.fd)  # lets go of whatever this process still held on the file
