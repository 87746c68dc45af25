// Sync-behind: a large file being written has its bytes sent to disk while it grows (an fdatasync
// every SYNC_BEHIND_BYTES, one at a time per file and a few at a time per process), so that the
// fsync at its end, which the writer waits for, finds little left to write. Without it the kernel
// keeps a whole GiB dirty in the page cache (background writeback starts at 10 % of memory) and the
// closing fsync writes all of it at once: ~1.7 s per GiB on our machines, after the last byte
// arrived. HDFS's datanodes do the same (dfs.datanode.sync.behind.writes, with sync_file_range,
// which Node does not offer; fdatasync waits for the pages it starts, in a libuv thread).

import {close, fdatasync, fsync, open, write, writev} from 'node:fs'

/** Bytes written between two syncs behind: small enough that the last one leaves ~10 ms of writeback, large enough that a GiB costs 64 syncs. */
export const SYNC_BEHIND_BYTES = 16 * 1024 * 1024

/**
 * Syncs behind under way at once in this process, over all files: each holds one of libuv's 4
 * threads until its pages are on disk, and the writes themselves need the others.
 */
export const SYNC_BEHIND_MAX_IN_FLIGHT = 2

let inFlight = 0
let started = 0

/** How many syncs behind this process started (for tests and metrics). */
export function syncsBehindStarted(): number {
  return started
}

/** Counts the bytes written to one file and starts its writeback every `every` bytes. */
export class SyncBehind {
  readonly #datasync: () => Promise<void>
  readonly #every: number
  #unsynced = 0
  #running: Promise<void> | undefined
  #error: unknown

  constructor(datasync: () => Promise<void>, every = SYNC_BEHIND_BYTES) {
    this.#datasync = datasync
    this.#every = every
  }

  /** Bytes that reached the file (written, not yet synced); may start a sync without waiting for it. */
  written(bytes: number): void {
    this.#unsynced += bytes
    // Behind by more than `every` while one runs or the process has its fill: the next write tries again.
    if (this.#unsynced < this.#every || this.#running || inFlight >= SYNC_BEHIND_MAX_IN_FLIGHT) return
    this.#unsynced = 0
    inFlight++
    started++
    const running = this.#datasync().then(
      () => undefined,
      (error: unknown) => {
        this.#error ??= error
      },
    )
    this.#running = running.finally(() => {
      inFlight--
      this.#running = undefined
    })
  }

  /** Waits for the sync under way, if any; never throws. Before the file is closed. */
  async idle(): Promise<void> {
    await this.#running
  }

  /**
   * Waits for the sync under way, then throws the first error any sync behind met. Before the
   * final fsync: Linux reports a failed writeback to one fsync of a file only, so the final one
   * would not see an error that a sync behind already took.
   */
  async settle(): Promise<void> {
    await this.idle()
    if (this.#error !== undefined) throw this.#error
  }
}

type Callback<T extends unknown[] = []> = (error: NodeJS.ErrnoException | null, ...results: T) => void

/**
 * The fs functions for `createWriteStream`'s `fs` option that sync behind the stream's writes, and
 * that wait for that before the stream's final fsync (`flush: true`) and before its close. One
 * object per stream.
 */
export function syncingBehind(every = SYNC_BEHIND_BYTES) {
  let behind: SyncBehind | undefined
  const track = (fd: number, bytes: number) => {
    behind ??= new SyncBehind(() => new Promise<void>((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve()))), every)
    behind.written(bytes)
  }

  return {
    open,
    write(fd: number, buffer: Buffer, offset: number, length: number, position: number | null, callback: Callback<[number, Buffer]>) {
      write(fd, buffer, offset, length, position, (error, bytes, written) => {
        if (!error) track(fd, bytes)
        callback(error, bytes, written)
      })
    },
    writev(fd: number, buffers: NodeJS.ArrayBufferView[], position: number | null, callback: Callback<[number, NodeJS.ArrayBufferView[]]>) {
      writev(fd, buffers, position, (error, bytes, written) => {
        if (!error) track(fd, bytes)
        callback(error, bytes, written)
      })
    },
    fsync(fd: number, callback: Callback) {
      ;(behind?.settle() ?? Promise.resolve()).then(
        () => fsync(fd, callback),
        (error: NodeJS.ErrnoException) => callback(error),
      )
    },
    close(fd: number, callback: Callback) {
      void (behind?.idle() ?? Promise.resolve()).then(() => close(fd, callback))
    },
  }
}
