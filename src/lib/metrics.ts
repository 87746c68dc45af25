import {subscribe, unsubscribe} from 'node:diagnostics_channel'
import type {Socket} from 'node:net'

import type {FastifyInstance, FastifyReply} from 'fastify'
import {Counter, Histogram, Registry, collectDefaultMetrics} from 'prom-client'

import {FSYNC_CHANNEL} from './durable-file.js'

/**
 * Buckets in seconds for transfers and disk syncs: from a millisecond (an fsync on a fast SSD, a
 * small file) to ten minutes (a multi-GiB upload on a slow link).
 */
export const DURATION_BUCKETS = [0.001, 0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 120, 600]

/**
 * A registry of one role instance, with node's process metrics: never prom-client's global one,
 * since a process may run several roles (tests do) and each must show only its own figures.
 */
export function createRegistry(): Registry {
  const registry = new Registry()
  collectDefaultMetrics({register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS})
  return registry
}

/**
 * How often the event loop's lag is sampled (a timer that wakes the process each time). prom-client's
 * 10 ms woke every idle server 100 times a second: about half of an idle keeper's CPU (41–62 against
 * 19–28 ms per second over 4 keepers, docs/performance.md). A stall of this length or more is still
 * seen in `nodejs_eventloop_lag_*`; shorter ones are not worth telling apart in a scrape.
 */
const EVENT_LOOP_SAMPLE_MS = 100

// What a connection had read and written when its last answer was counted; the next answer counts the rest.
const counted = new WeakMap<Socket, {read: number; written: number}>()

/**
 * Counts every request a server answers by method, route *pattern* (`/files/:name`, never the raw
 * URL: bounded labels, and no file names in the metrics) and status, and the bytes its connections
 * carried. Bytes are counted per connection when each answer ends (headers included), so uploads
 * and downloads that fastify never sees as bodies (streamed, hijacked) are counted too, without a
 * listener on their streams.
 */
export function countRequests(app: FastifyInstance, registry: Registry): void {
  const requests = new Counter({
    name: 'dfs_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status ("aborted": the connection closed before the answer was complete)',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  })
  const received = new Counter({name: 'dfs_http_received_bytes_total', help: 'Bytes received on HTTP connections (request lines, headers and bodies), by route pattern', labelNames: ['route'] as const, registers: [registry]})
  const sent = new Counter({name: 'dfs_http_sent_bytes_total', help: 'Bytes sent on HTTP connections (status lines, headers and bodies), by route pattern', labelNames: ['route'] as const, registers: [registry]})
  app.addHook('onRequest', (request, reply, done) => {
    const response = reply.raw
    // Taken now: by the time the answer closes, node may have detached the socket from the request.
    const socket = request.raw.socket
    response.once('close', () => {
      // Unknown paths share one label: the raw URL would make a series per probe of a scanner.
      const route = request.routeOptions.url ?? 'unmatched'
      const status = response.writableFinished ? String(response.statusCode) : 'aborted'
      requests.inc({method: request.method, route, status})
      const before = counted.get(socket) ?? {read: 0, written: 0}
      const now = {read: socket.bytesRead, written: socket.bytesWritten}
      counted.set(socket, now)
      received.inc({route}, Math.max(0, now.read - before.read))
      sent.inc({route}, Math.max(0, now.written - before.written))
    })
    done()
  })
}

/**
 * Counts the fsyncs of this process (durable-file.ts publishes them) into a histogram of
 * `registry`; returns what stops counting. A process running one keeper counts that keeper's.
 */
export function timeFsyncs(registry: Registry, name: string): () => void {
  const fsyncs = new Histogram({name, help: 'Seconds each fsync of a file or directory took (a blob fsync includes its close)', buckets: DURATION_BUCKETS, registers: [registry]})
  const observe = (message: unknown) => fsyncs.observe((message as {seconds: number}).seconds)
  subscribe(FSYNC_CHANNEL, observe)
  return () => unsubscribe(FSYNC_CHANNEL, observe)
}

/** Answers a scrape: the registry's metrics in Prometheus' text format. */
export async function sendMetrics(registry: Registry, reply: FastifyReply): Promise<void> {
  const text = await registry.metrics()
  await reply.type(registry.contentType).send(text)
}

/** Seconds since `start` (a `performance.now()` reading). */
export function secondsSince(start: number): number {
  return (performance.now() - start) / 1000
}
