import {setTimeout as sleep} from 'node:timers/promises'
import {setFlagsFromString} from 'node:v8'

import {Agent, request, type Dispatcher} from 'undici'

import {DfsError, errorFromBody} from './errors.js'

// Why: undici parses HTTP with llhttp compiled to WebAssembly, and V8's optimizing compile of it
// (TurboFan) costs ~34 MB of transient memory and ~0.3 s of CPU in every process's first request
// (`dfs ls`: peak RSS 110 → 74 MB, 0.75–0.9 s → 0.45–0.65 s). Liftoff's baseline code parses fast
// enough: a 1 GiB get took the same CPU and time with and without the flag (4 runs each, noise
// ±30 %). `--no-wasm-tier-up` alone does not avoid the compile. undici compiles the module lazily at
// its first connection, so setting the flag here, after undici's import but before any request, is
// early enough. It applies to the whole process (the master and keepers import this module too).
setFlagsFromString('--liftoff-only')

/** Which peer a request goes to, so that a failure to connect says who could not be reached. */
export type Peer = 'master' | 'keeper'

// One keep-alive pool per process: connection set-up is a large part of a small request's cost.
let agent: Agent | undefined

export function httpAgent(): Agent {
  agent ??= new Agent({keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000, connections: 64, pipelining: 1})
  return agent
}

export interface JsonRequest {
  method?: Dispatcher.HttpMethod
  body?: unknown
  signal?: AbortSignal
  /** Milliseconds to wait for the answer's headers. */
  timeout?: number
  /**
   * For how long a refused connection is tried again. A refused request never arrived, so trying
   * again is safe for every method; it rides over a master restart. Default: 3 s for the master.
   */
  patienceMs?: number
}

const MASTER_PATIENCE_MS = 3000

/** Sends a JSON request and returns the parsed answer; a `{error, message}` answer becomes a DfsError. */
export async function callJson<T>(peer: Peer, base: string, path: string, init: JsonRequest = {}): Promise<T> {
  const {method = init.body === undefined ? 'GET' : 'POST', body, signal, timeout = 30_000} = init
  const deadline = Date.now() + (init.patienceMs ?? (peer === 'master' ? MASTER_PATIENCE_MS : 0))
  let response: Dispatcher.ResponseData
  for (let wait = 50; ; wait = Math.min(wait * 2, 500)) {
    try {
      response = await request(new URL(path, base), {
        method,
        dispatcher: httpAgent(),
        headers: body === undefined ? {} : {'content-type': 'application/json'},
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      })
      break
    } catch (error) {
      if (!refused(error) || Date.now() + wait > deadline || signal?.aborted) throw unreachable(peer, base, error)
      await sleep(wait)
    }
  }

  const text = await response.body.text()
  let parsed: unknown
  try {
    parsed = text.length > 0 ? JSON.parse(text) : undefined
  } catch {
    parsed = undefined
  }

  if (response.statusCode >= 400) throw errorFromBody(response.statusCode, parsed, `the ${peer} at ${base}`)
  return parsed as T
}

/** The error for a peer that did not answer at all (refused, reset, timed out, bad address). */
export function unreachable(peer: Peer, base: string, error: unknown): DfsError {
  if (error instanceof DfsError) return error
  const code = peer === 'master' ? 'DFS_ERR_MASTER_UNREACHABLE' : 'DFS_ERR_KEEPER_UNREACHABLE'
  return new DfsError(code, `cannot reach the ${peer} at ${base}: ${reason(error)}`, {cause: error})
}

function refused(error: unknown): boolean {
  const {code, cause} = error as {code?: string; cause?: {code?: string}}
  return code === 'ECONNREFUSED' || cause?.code === 'ECONNREFUSED'
}

function reason(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const cause = (error as {cause?: unknown}).cause
  const code = (error as {code?: string}).code
  if (cause instanceof Error && cause.message) return cause.message
  if (code === 'ECONNREFUSED') return 'connection refused'
  return error.message || code || error.name
}
