import {Agent, request, type Dispatcher} from 'undici'

import {DfsError, errorFromBody} from './errors.js'

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
}

/** Sends a JSON request and returns the parsed answer; a `{error, message}` answer becomes a DfsError. */
export async function callJson<T>(peer: Peer, base: string, path: string, init: JsonRequest = {}): Promise<T> {
  const {method = init.body === undefined ? 'GET' : 'POST', body, signal, timeout = 30_000} = init
  let response: Dispatcher.ResponseData
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
  } catch (error) {
    throw unreachable(peer, base, error)
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

function reason(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const cause = (error as {cause?: unknown}).cause
  const code = (error as {code?: string}).code
  if (cause instanceof Error && cause.message) return cause.message
  if (code === 'ECONNREFUSED') return 'connection refused'
  return error.message || code || error.name
}
