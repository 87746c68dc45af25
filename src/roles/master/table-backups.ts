import {mkdir, readdir, rename, rm} from 'node:fs/promises'
import {join} from 'node:path'

import Database from 'better-sqlite3'

import {fsyncPath, syncDirectory} from '../../lib/durable-file.js'
import {newId} from '../../lib/ids.js'
import type {MasterTable} from './table.js'

export interface TableBackupOptions {
  dir: string
  intervalMs: number
  /** Backups kept: the oldest beyond this many are removed after each new one. */
  keep: number
  log: {info(message: string): void; warn(message: string): void}
}

/** A backup's file name; names sort in the order they were taken. */
const BACKUP_NAME = /^master-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z\.sqlite3$/

/**
 * Online backups of the master's table every `intervalMs` (SQLite's backup API: a consistent copy
 * while the master keeps writing). Each is written to a temp file in the backup dir, fsynced and
 * renamed into place, so a crash never leaves a partial file under a backup's name; a backup is
 * the table file itself, restored by copying it into --data as master.sqlite3.
 */
export class TableBackups {
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined

  constructor(
    private readonly table: MasterTable,
    private readonly options: TableBackupOptions,
  ) {}

  start(): void {
    this.#timer = setInterval(() => {
      // A backup slower than the interval is not run twice at once.
      this.#running ??= this.backup()
        .then(
          () => undefined,
          (error: unknown) => this.options.log.warn(`backup of the table into ${this.options.dir} failed: ${(error as Error).message}`),
        )
        .finally(() => (this.#running = undefined))
    }, this.options.intervalMs)
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    await this.#running
  }

  /** Takes one backup now and removes the oldest beyond `keep`; returns its path. */
  async backup(): Promise<string> {
    const {dir} = this.options
    await mkdir(dir, {recursive: true})
    const name = `master-${new Date().toISOString().replaceAll(/[:.]/g, '-')}.sqlite3`
    const partial = join(dir, `.${name}.${newId(6)}.part`)
    try {
      await this.table.backup(partial)
      selfContained(partial)
      await fsyncPath(partial)
      await rename(partial, join(dir, name))
      await syncDirectory(dir)
    } finally {
      await rm(partial, {force: true})
    }

    const backups = (await readdir(dir)).filter((entry) => BACKUP_NAME.test(entry)).sort()
    for (const old of backups.slice(0, Math.max(0, backups.length - this.options.keep))) await rm(join(dir, old), {force: true})
    this.options.log.info(`backed up the table to ${join(dir, name)}`)
    return join(dir, name)
  }
}

/**
 * A backup is made in the table's WAL mode; in rollback mode it is one file that a reader (sqlite3,
 * a restore) opens without writing -wal and -shm files beside it.
 */
function selfContained(path: string): void {
  const db = new Database(path)
  try {
    db.pragma('journal_mode = DELETE')
  } finally {
    db.close()
  }
}
