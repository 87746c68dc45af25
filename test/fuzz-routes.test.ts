// A seeded property-based fuzz of every route of the master and the keepers (fast-check): random
// methods, paths (the protocol's routes filled with stored names, real ids and junk, and paths of
// no route at all), query strings, headers and bodies, sent to real processes. Whatever comes in,
// no server exits, every answer is either a catalogue error with the catalogue's status or a
// success that fits the route's schema, and no stored byte changes. The cluster has a key, as every
// test cluster does; the requests show no credential, a forged one, or a genuine `read` token or
// `read` grant (which may read but never change anything). The run is bounded in count and in
// time; a failure prints the seed and the shortest request that shows it.

import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {readdir, readFile} from 'node:fs/promises'
import {request as httpRequest} from 'node:http'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {TypeCompiler} from '@sinclair/typebox/compiler'
import fc from 'fast-check'

import {mintClientToken} from '../src/lib/client-tokens.js'
import {ClusterKey} from '../src/lib/cluster-key.js'
import {ERRORS, isErrorCode} from '../src/lib/errors.js'
import {keeperRoutes, masterRoutes, type Route} from '../src/lib/protocol.js'
import {TestCluster, randomFile, sha256File, tempDir} from './helpers/cluster.js'

/** The seed of the run; DFS_FUZZ_SEED replays another. */
const SEED = Number(process.env.DFS_FUZZ_SEED ?? 20261129)
const RUNS = Number(process.env.DFS_FUZZ_RUNS ?? 300)
/** Only a bound on the test's length: fast-check stops drawing after it, and says how many it ran. */
const TIME_LIMIT_MS = 60_000

interface FuzzRequest {
  server: number
  method: string
  path: string
  headers: Record<string, string>
  body: Buffer | undefined
}

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

/** Sends the request exactly as drawn; undefined if the server closed without an answer. */
function send(base: string, fuzz: FuzzRequest): Promise<Answer | undefined> {
  const {hostname, port} = new URL(base)
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({host: hostname, port, method: fuzz.method, path: fuzz.path, headers: fuzz.headers, timeout: 60_000}, (incoming) => {
      const chunks: Buffer[] = []
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk))
      incoming.on('end', () => resolve({status: incoming.statusCode ?? 0, headers: incoming.headers, body: Buffer.concat(chunks)}))
      incoming.on('error', () => resolve(undefined))
    })
    outgoing.on('timeout', () => outgoing.destroy(new Error(`${fuzz.method} ${fuzz.path} had no answer within 60 s`)))
    outgoing.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' || error.code === 'EPIPE' ? resolve(undefined) : reject(error)))
    outgoing.end(fuzz.body)
  })
}

/** fastify's path syntax as a pattern: `/files/:name` matches one segment for `name`. */
function pathPattern(route: Route): RegExp {
  return new RegExp(`^${route.url.replace(/:[a-z]+/gi, '[^/]+')}$`)
}

const checks = new Map<Route, ReturnType<typeof TypeCompiler.Compile> | undefined>()
function responseCheck(route: Route) {
  if (!checks.has(route)) checks.set(route, route.response ? TypeCompiler.Compile(route.response) : undefined)
  return checks.get(route)
}

/** What every answer must be: a catalogue error with its status, or a success of the route asked. */
function assertAnswerFits(routes: Record<string, Route>, fuzz: FuzzRequest, answer: Answer): void {
  const what = `${fuzz.method} ${fuzz.path} → ${answer.status} ${answer.body.subarray(0, 300).toString('utf8')}`
  if (answer.status >= 400) {
    // HEAD answers carry no body: the status must still be one the catalogue gives.
    if (fuzz.method === 'HEAD') return void assert.ok(Object.values(ERRORS).some((error) => error.status === answer.status), `not a catalogue status: ${what}`)
    let body: {error: unknown; message: unknown}
    try {
      body = JSON.parse(answer.body.toString('utf8')) as typeof body
    } catch {
      assert.fail(`an error answer that is not JSON: ${what}`)
    }

    assert.ok(isErrorCode(body.error), `not a catalogue error: ${what}`)
    assert.equal(ERRORS[body.error].status, answer.status, `not the catalogue's status: ${what}`)
    assert.equal(typeof body.message, 'string', what)
    assert.ok(answer.status < 500 || body.error !== 'DFS_ERR_INTERNAL', `an internal error: ${what}`)
    return
  }

  const pathname = fuzz.path.split('?')[0]!
  const method = fuzz.method === 'HEAD' ? 'GET' : fuzz.method
  const route = Object.values(routes).find((candidate) => candidate.method === method && pathPattern(candidate).test(pathname))
  assert.ok(route, `a success on no route of the protocol: ${what}`)
  assert.ok(answer.status < 300 || answer.status === 304, `an unexpected status: ${what}`)
  if (route.bytes === 'response' || fuzz.method === 'HEAD' || answer.status === 304) return
  const check = responseCheck(route)
  if (check) assert.ok(check.Check(JSON.parse(answer.body.toString('utf8'))), `a success that does not fit ${route.url}'s schema: ${what}`)
}

/** Every byte a keeper stores, by path under its data dir: what must not change. */
async function storedBytes(cluster: TestCluster): Promise<Map<string, string>> {
  const found = new Map<string, string>()
  for (const dir of cluster.keeperDirs) {
    const blobs = join(dir, 'blobs')
    for (const entry of await readdir(blobs, {recursive: true, withFileTypes: true})) {
      if (!entry.isFile()) continue
      const path = join(entry.parentPath, entry.name)
      found.set(path, createHash('sha256').update(await readFile(path)).digest('hex'))
    }
  }

  return found
}

describe('a seeded fuzz of every route', () => {
  let cluster: TestCluster
  let work: string
  const stored: Array<{name: string; sha256: string}> = []
  let fileIds: string[] = []
  let readToken = ''
  let readGrants: string[] = []

  before(async () => {
    cluster = await TestCluster.start({keepers: 3})
    work = await tempDir()
    for (const name of ['kept.mp4', 'second file.bin']) {
      const path = join(work, name.replace(/ /g, '_'))
      const sha256 = await randomFile(path, 256 * 1024)
      assert.equal((await cluster.dfs(['put', path, '--name', name, '--wait', 'all'])).code, 0)
      stored.push({name, sha256})
    }

    fileIds = await Promise.all(stored.map(async ({name}) => (await cluster.stat(name)).fileId))
    readToken = (await mintClientToken(await ClusterKey.load(cluster.secretFile), {scope: 'read', ttlMs: 3_600_000})).token
    readGrants = (await Promise.all(stored.map(async ({name}) => (await cluster.stat(name)).replicas.map((replica) => (replica as {grant?: string}).grant)))).flat().filter((grant): grant is string => grant !== undefined)
  })

  after(async () => {
    await cluster.stop()
  })

  test('no server exits, every answer is a catalogue error or a valid success, and no stored byte changes', async () => {
    const before = await storedBytes(cluster)
    assert.equal(before.size, stored.length * 3 * 2, 'every replica is a blob and its description')
    const servers = [{url: cluster.masterUrl, routes: masterRoutes as Record<string, Route>}, ...cluster.keepers.map((keeper) => ({url: keeper.url, routes: keeperRoutes as Record<string, Route>}))]
    const keeperIds = cluster.keepers.map((keeper) => keeper.id)

    const segment = fc.oneof(
      fc.constantFrom(...stored.map(({name}) => encodeURIComponent(name)), ...fileIds, ...keeperIds, 'x', '..', '.', '%2e%2e', '%2F', '%00', '%zz', '%E2%80%AE', ''),
      fc.string({unit: 'grapheme', maxLength: 40}).map((text) => encodeURIComponent(text)),
      fc.uint8Array({maxLength: 24}).map((bytes) => [...bytes].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('')),
    )
    const templates = [...Object.values(masterRoutes), ...Object.values(keeperRoutes)].map((route) => route.url)
    const path = fc.oneof(
      fc.tuple(fc.constantFrom(...templates), segment, segment).map(([template, first, second]) => {
        let filled = 0
        return template.replace(/:[a-z]+/gi, () => (filled++ === 0 ? first : second))
      }),
      fc.array(segment, {maxLength: 4}).map((parts) => `/${parts.join('/')}`),
    )
    const query = fc.option(
      fc.array(fc.tuple(fc.constantFrom('fileId', 'upload', 'grant', 'ttl', 'x', 'range'), fc.oneof(segment, fc.constantFrom(...fileIds, ...readGrants))), {maxLength: 3}).map((pairs) => `?${pairs.map(([key, value]) => `${key}=${value}`).join('&')}`),
      {nil: ''},
    )
    assert.ok(readGrants.length > 0, 'the master hands out read grants')
    const credential = fc.oneof(
      fc.constantFrom(`Bearer ${readToken}`, `Bearer ${readToken.slice(0, -2)}xx`, 'Bearer eyJhbGciOiJub25lIn0.eyJzY29wZSI6ImFkbWluIn0.'),
      fc.constantFrom(...readGrants),
    )
    const headerValue = fc.oneof(
      credential,
      fc.constantFrom('application/json', 'application/octet-stream', 'text/plain', 'bytes=0-10', 'bytes=-5', 'bytes=5-1', 'bytes=0-0,2-3', 'Bearer x.y.z', 'Bearer ', '0', '-1', '99999999999999999999', 'a'.repeat(64), '*'),
      fc.string({unit: fc.integer({min: 0x20, max: 0x7e}).map((code) => String.fromCharCode(code)), maxLength: 60}),
    )
    const headers = fc.dictionary(
      fc.constantFrom('content-type', 'range', 'if-range', 'if-none-match', 'authorization', 'x-dfs-member', 'x-dfs-grant', 'x-dfs-size', 'x-dfs-sha256', 'x-dfs-file-id', 'x-other'),
      headerValue,
      {maxKeys: 4},
    )
    const knownFields = ['name', 'size', 'sha256', 'fileId', 'keeperId', 'id', 'url', 'source', 'path', 'inventory', 'exclude', 'keeper', 'freeBytes', 'storedBytes', 'fileCount', 'activeTransfers', 'files', 'corrupt', 'replicas']
    const jsonValue = fc.oneof(
      fc.constantFrom(...stored.map(({name}) => name), ...stored.map(({sha256}) => sha256), ...fileIds, ...keeperIds, ...servers.map(({url}) => url), 'http://127.0.0.1:1/', '/etc/passwd'),
      fc.integer({min: -1, max: 2 ** 40}),
      fc.string({maxLength: 30}),
      fc.boolean(),
      fc.constant(null),
    )
    const body = fc.oneof(
      fc.constant(undefined),
      fc.dictionary(fc.oneof(fc.constantFrom(...knownFields), fc.string({maxLength: 8})), fc.oneof(jsonValue, fc.array(jsonValue, {maxLength: 3})), {maxKeys: 6}).map((value) => Buffer.from(JSON.stringify(value))),
      fc.uint8Array({maxLength: 2048}).map((bytes) => Buffer.from(bytes)),
      fc.string({maxLength: 200}).map((text) => Buffer.from(text)),
    )
    const fuzzRequest = fc.record({
      server: fc.integer({min: 0, max: servers.length - 1}),
      method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
      path: fc.tuple(path, query).map(([pathname, search]) => pathname + search),
      headers,
      body,
    })

    let sent = 0
    await fc.assert(
      fc.asyncProperty(fuzzRequest, async (fuzz) => {
        // HTTP has no body on these: node would refuse to send one.
        const request: FuzzRequest = fuzz.method === 'GET' || fuzz.method === 'HEAD' ? {...fuzz, body: undefined} : fuzz
        const answer = await send(servers[request.server]!.url, request)
        sent++
        // A server may close on a request it cannot parse; then it must still be up.
        if (answer) assertAnswerFits(servers[request.server]!.routes, request, answer)
        for (const server of [cluster.master, ...cluster.keepers]) assert.equal(server.exited, false, `${server.describe()} exited after ${request.method} ${request.path}`)
      }),
      {seed: SEED, numRuns: RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false},
    )
    assert.ok(sent >= Math.min(RUNS, 50), `only ${sent} requests were sent`)

    // Nothing stored changed: the same blobs byte for byte, and every file reads back.
    assert.deepEqual(await storedBytes(cluster), before)
    for (const {name, sha256} of stored) {
      const out = join(work, `${createHash('sha256').update(name).digest('hex')}.copy`)
      assert.equal((await cluster.dfs(['get', name, '-o', out])).code, 0)
      assert.equal(await sha256File(out), sha256)
    }

    const fsck = await cluster.dfsJson<{status: string; summary: {files: number; healthy: number}}>(['fsck'])
    assert.deepEqual({status: fsck.status, files: fsck.summary.files, healthy: fsck.summary.healthy}, {status: 'healthy', files: stored.length, healthy: stored.length})
  })
})
