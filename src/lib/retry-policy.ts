import {setTimeout as sleep} from 'node:timers/promises'

import {DfsError} from './errors.js'

export interface RetryPolicyOptions {
  /** Which failures are tried again. */
  retryable: (error: unknown) => boolean
  /** For how long, from the first attempt: 0 never, Infinity until the caller's signal aborts. */
  patienceMs: number
  /** The pause after the first failure; it doubles after each further one. */
  firstDelayMs: number
  maxDelayMs: number
}

export interface RetryRun {
  /** Stops the retries: the last failure is thrown at once. */
  signal?: AbortSignal
  /** Called before each pause, with the failure and how many attempts failed so far. */
  onRetry?: (error: unknown, failures: number) => void
}

/**
 * When a failed request is tried again, and how often: the one retry loop of dfs. A policy tries
 * the same request against the same peer; going to another replica or keeper instead (get's and
 * put's failover) is a decision of the caller, not a retry.
 */
export class RetryPolicy {
  readonly options: Readonly<RetryPolicyOptions>

  constructor(options: RetryPolicyOptions) {
    if (!(options.patienceMs >= 0)) throw new TypeError(`RetryPolicy: patienceMs must be 0 or more, not ${options.patienceMs}`)
    if (!(options.firstDelayMs > 0 && options.maxDelayMs >= options.firstDelayMs)) {
      throw new TypeError(`RetryPolicy: need 0 < firstDelayMs <= maxDelayMs, not ${options.firstDelayMs} and ${options.maxDelayMs}`)
    }

    this.options = {...options}
  }

  /** Nothing is tried again. */
  static readonly never = new RetryPolicy({retryable: () => false, patienceMs: 0, firstDelayMs: 1, maxDelayMs: 1})

  /**
   * Refused connections are tried again for 3 s. A refused request never arrived, so trying it
   * again is safe for every method, and it rides over a restart of the peer (the master's).
   */
  static readonly refusedForAWhile = new RetryPolicy({retryable: connectionRefused, patienceMs: 3000, firstDelayMs: 50, maxDelayMs: 500})

  /**
   * Any failure to get an answer is tried again until the caller stops: for idempotent requests
   * without which the caller cannot go on (a keeper's registration with its master).
   */
  static readonly untilAnswered = new RetryPolicy({retryable: unanswered, patienceMs: Infinity, firstDelayMs: 200, maxDelayMs: 2000})

  async run<T>(attempt: () => Promise<T>, run: RetryRun = {}): Promise<T> {
    const {retryable, patienceMs, firstDelayMs, maxDelayMs} = this.options
    const deadline = Date.now() + patienceMs
    for (let failures = 1, delay = firstDelayMs; ; failures++, delay = Math.min(delay * 2, maxDelayMs)) {
      try {
        return await attempt()
      } catch (error) {
        if (!retryable(error) || Date.now() + delay > deadline || run.signal?.aborted) throw error
        run.onRetry?.(error, failures)
        try {
          await sleep(delay, undefined, {signal: run.signal})
        } catch {
          throw error
        }
      }
    }
  }
}

/** The peer refused the connection: the request never reached it. */
export function connectionRefused(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if ((cause as {code?: unknown}).code === 'ECONNREFUSED') return true
  }

  return false
}

/** No answer came: refused, reset, timed out. */
function unanswered(error: unknown): boolean {
  return error instanceof DfsError && (error.code === 'DFS_ERR_MASTER_UNREACHABLE' || error.code === 'DFS_ERR_KEEPER_UNREACHABLE')
}
