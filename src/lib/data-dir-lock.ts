import {createHash} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {link, mkdir, readdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join, resolve} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {DfsError} from './errors.js'
import {newId} from './ids.js'

/** The lock file in a data directory; it names the process that uses the directory. */
export const LOCK_FILE = 'dfs.lock'
// Temp copies, and claims of succession to a stale lock, sit beside it under this prefix.
const AUX_PREFIX = `.${LOCK_FILE}.`
const CLAIM_PREFIX = `${AUX_PREFIX}next-`

/** Who holds a lock: enough to tell whether that process still runs, and to say who it is. */
export interface LockOwner {
  pid: number
  role: string
  host: string
  startedAt: string
  /** The kernel's start time of the process (Linux), so that a recycled pid is not taken for it. */
  procStart?: string
  nonce: string
}

export interface DataDirLock {
  readonly path: string
  /** Removes the lock, if it is still ours. */
  release(): Promise<void>
}

/**
 * Locks a data directory for this process: two masters on one table, or two keepers on one blob
 * directory, would corrupt each other. A lock left by a process that is gone (killed, crashed, or
 * whose pid now belongs to another process) is taken over; one of a live process is refused with a
 * line that names it.
 *
 * Locks are created whole and at once (written to a temp file, then hard-linked into place, which
 * fails if a lock exists). To take over a stale lock, a starter must first create the claim of
 * succession named after that lock's exact content; only one starter can, so two processes that
 * find the same stale lock at once cannot both end up holding the directory.
 */
export async function lockDataDir(dir: string, role: string): Promise<DataDirLock> {
  const directory = resolve(dir)
  await mkdir(directory, {recursive: true})
  const path = join(directory, LOCK_FILE)
  const me: LockOwner = {pid: process.pid, role, host: hostname(), startedAt: new Date().toISOString(), procStart: processStartTime(process.pid), nonce: newId()}
  const text = JSON.stringify(me) + '\n'
  const tmp = join(directory, `${AUX_PREFIX}${me.nonce}`)
  await writeFile(tmp, text, {flag: 'wx'})
  let claim: string | undefined
  try {
    for (let round = 0; ; round++) {
      if (await linkIfAbsent(tmp, path)) break
      const seen = await readText(path)
      if (seen === undefined) continue
      const holder = parseOwner(seen)
      if (holder && isAlive(holder)) throw inUse(directory, path, holder)

      const candidate = join(directory, `${CLAIM_PREFIX}${createHash('sha256').update(seen).digest('hex').slice(0, 16)}`)
      if (!(await linkIfAbsent(tmp, candidate))) {
        const rival = parseOwner((await readText(candidate)) ?? '')
        if (!rival || !isAlive(rival)) {
          // A takeover that died halfway; whoever comes next may try again.
          await rm(candidate, {force: true})
        } else if (round > 500) {
          throw new DfsError('DFS_ERR_EXISTS', `cannot lock ${directory}: pid ${rival.pid} is taking over its lock and does not finish`)
        } else {
          // Another starter is taking this stale lock over; its own lock will be there shortly.
          await sleep(10)
        }

        continue
      }

      // Only this claim's holder replaces `seen`; the check guards against a starter that read an
      // older lock long ago and only now got its claim.
      if ((await readText(path)) !== seen) {
        await rm(candidate, {force: true})
        continue
      }

      const copy = `${tmp}.copy`
      await link(tmp, copy)
      await rename(copy, path)
      claim = candidate
      break
    }
  } finally {
    await rm(tmp, {force: true})
  }

  await sweepLeftovers(directory, claim)
  return {
    path,
    async release() {
      if ((await readText(path)) === text) await rm(path, {force: true})
      // The claim is kept while the lock is held, so a slow rival cannot claim the same stale lock.
      if (claim) await rm(claim, {force: true})
    },
  }
}

/** The owner named in a directory's lock file, if it has one. */
export async function lockOwner(dir: string): Promise<LockOwner | undefined> {
  return parseOwner((await readText(join(resolve(dir), LOCK_FILE))) ?? '')
}

/** Whether the process a lock names still runs (one on another machine is assumed to). */
export function isAlive(owner: LockOwner): boolean {
  if (owner.host !== hostname()) return true
  if (!isRunning(owner.pid)) return false
  const start = processStartTime(owner.pid)
  return owner.procStart === undefined || start === undefined || start === owner.procStart
}

/** Whether a process of that pid exists (one we may not signal counts as existing). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The start time of a process in clock ticks since boot (Linux), or undefined where /proc is missing. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which is in parentheses and may itself hold spaces; starttime is field 22.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

function inUse(directory: string, path: string, holder: LockOwner): DfsError {
  const elsewhere = holder.host === hostname() ? '' : ` on host ${holder.host}; if it no longer runs there, delete ${path}`
  return new DfsError('DFS_ERR_EXISTS', `${directory} is in use by dfs ${holder.role} pid ${holder.pid} (since ${holder.startedAt})${elsewhere}`)
}

/** Temp copies and claims of starters that died: removed once this process holds the lock. */
async function sweepLeftovers(directory: string, keep: string | undefined): Promise<void> {
  for (const entry of await readdir(directory)) {
    const path = join(directory, entry)
    if (!entry.startsWith(AUX_PREFIX) || path === keep) continue
    // A file that does not parse may be a live starter's temp file still being written: left alone.
    const owner = parseOwner((await readText(path)) ?? '')
    if (owner && !isAlive(owner)) await rm(path, {force: true})
  }
}

async function linkIfAbsent(existing: string, newPath: string): Promise<boolean> {
  try {
    await link(existing, newPath)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(text) as Partial<LockOwner>
    if (typeof owner.pid !== 'number' || typeof owner.host !== 'string' || typeof owner.nonce !== 'string') return undefined
    return {role: 'process', startedAt: 'an unknown time', ...owner} as LockOwner
  } catch {
    return undefined
  }
}
