import {DfsError} from './errors.js'

/** Defaults of the protocol; every one can be changed by a flag so that tests run fast. */
export const DEFAULTS = {
  masterPort: 7700,
  masterUrl: 'http://127.0.0.1:7700',
  host: '127.0.0.1',
  replicas: 3,
  heartbeatIntervalMs: 1000,
  heartbeatTimeoutMs: 3000,
  replicationIntervalMs: 10_000,
  rangeSize: 4 * 1024 * 1024,
  scrubIntervalMs: 60 * 60 * 1000,
  scrubBytesPerSecond: 32 * 1024 * 1024,
  keepers: 4,
  clusterDir: '.dfs',
  /** Uploads begun and not committed, at most: each ticket holds memory until it commits or expires. */
  maxPendingUploads: 10_000,
  /** Lifetime of a client token (dfs token create, and the admin token of dfs cluster up). */
  tokenTtlMs: 30 * 24 * 60 * 60 * 1000,
  /** How long `master --recover` listens to keepers registering before it builds the table. */
  recoverWindowMs: 60_000,
  backupKeep: 7,
  /**
   * The longest a keeper's heartbeat waits for its answer (two intervals, at least 1 s, at most
   * this) before the next is sent: one stuck in a lossy link, behind TCP's backed-off
   * retransmits, must not hold back the next until the master declares the keeper dead.
   */
  heartbeatRequestTimeoutMs: 5000,
  /**
   * A peer that sends no answer, or no byte of a file, for this long is taken to be gone (a host cut
   * off keeps its connections open and silent): a client moves the range to another replica, a
   * keeper's copy fails and the master orders it from another holder.
   */
  stallTimeoutMs: 30_000,
  /**
   * How long a keeper told to stop (SIGTERM, Ctrl-C) waits for the uploads and copies under way
   * before it closes their connections: long enough for a transfer that is moving to finish (a
   * silent one ends after stallTimeoutMs anyway); a second signal stops it at once.
   */
  keeperStopGraceMs: 30_000,
  /** The same for the master, whose requests are short JSON calls. */
  masterStopGraceMs: 5000,
} as const

/** The master a client talks to: `--master`, else `DFS_MASTER`, else the local default. */
export function resolveMasterUrl(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return parseHttpUrl(flag ?? env.DFS_MASTER ?? DEFAULTS.masterUrl, 'master URL')
}

/** Checks that `value` is an http(s) URL and returns it without a trailing slash. */
export function parseHttpUrl(value: string, what: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new DfsError('DFS_ERR_BAD_REQUEST', `invalid ${what} "${value}": expected something like http://host:port`)
  }

  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new DfsError('DFS_ERR_BAD_REQUEST', `invalid ${what} "${value}": only http:// and https:// are supported`)
  }

  return url.toString().replace(/\/$/, '')
}
