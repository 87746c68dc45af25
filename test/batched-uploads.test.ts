// The put side of many small files in batches, on real masters and keepers with a cluster key:
// POST /uploads/batch (tickets), POST /uploads/commits (a keeper's commits), and `dfs put` of many
// files, which confirms through POST /lookup and believes the master only.

import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {mintClientToken, type Scope} from '../src/lib/client-tokens.js'
import {ClusterKey} from '../src/lib/cluster-key.js'
import {GRANT_HEADER} from '../src/lib/grants.js'
import {MEMBER_HEADER, mintMemberCredential, newMember, type Member} from '../src/lib/member-auth.js'
import {MAX_UPLOAD_BATCH, SHA256_HEADER, type KeeperInfo, type UploadBatchTickets} from '../src/lib/protocol.js'
import {bearer, clusterPerTest, json, randomFile, sha256File, waitFor, type TestCluster} from './helpers/cluster.js'
import {startProxiedKeeper} from './helpers/keeper-proxy.js'
import {assertPutOutcomes} from './helpers/put-outcomes.js'

type Answer = {status: number; body: any}

async function tokenOf(cluster: TestCluster, scope: Scope): Promise<string> {
  return (await mintClientToken(await ClusterKey.load(cluster.secretFile), {scope, ttlMs: 3_600_000})).token
}

function askTickets(cluster: TestCluster, uploads: unknown, headers: Record<string, string>): Promise<Answer> {
  return json<UploadBatchTickets>(`${cluster.masterUrl}/uploads/batch`, {method: 'POST', headers: {...headers, 'content-type': 'application/json'}, body: JSON.stringify({uploads})})
}

/** A raw request to the master with a member credential made for exactly it (or none). */
async function asMember(cluster: TestCluster, path: string, body: unknown, member?: Member): Promise<Answer> {
  const headers: Record<string, string> = {'content-type': 'application/json'}
  if (member) headers[MEMBER_HEADER] = await mintMemberCredential(await ClusterKey.load(cluster.secretFile), member, {method: 'POST', path, to: 'master'})
  return json<any>(`${cluster.masterUrl}${path}`, {method: 'POST', headers, body: JSON.stringify(body)})
}

function assertError(answer: Answer, status: number, code: string, what: string): void {
  assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer.body)}`)
  assert.equal(answer.body.error, code, what)
  assert.equal(typeof answer.body.message, 'string', what)
}

const SHA_A = 'a'.repeat(64)

describe('uploads in batches', () => {
  const clusters = clusterPerTest()

  test('POST /uploads/batch: a write token, at most 250 well-formed uploads; each refused upload gets its own error, the others tickets spread over the keepers that the keepers honour', async () => {
    const cluster = await clusters.start({keepers: 2, replicas: 1})
    const writer = bearer(await tokenOf(cluster, 'write'))
    const good = {name: 'good.bin', size: 10, sha256: SHA_A}

    assertError(await askTickets(cluster, [good], {}), 401, 'DFS_ERR_UNAUTHENTICATED', 'no token')
    assertError(await askTickets(cluster, [good], bearer(await tokenOf(cluster, 'read'))), 403, 'DFS_ERR_FORBIDDEN', 'a read token')
    assertError(await askTickets(cluster, [], writer), 400, 'DFS_ERR_BAD_REQUEST', 'no upload')
    const tooMany = Array.from({length: MAX_UPLOAD_BATCH + 1}, (_, index) => ({...good, name: `many-${index}.bin`}))
    assertError(await askTickets(cluster, tooMany, writer), 400, 'DFS_ERR_BAD_REQUEST', `${MAX_UPLOAD_BATCH + 1} uploads`)
    assertError(await askTickets(cluster, [good, {name: 'sizeless.bin', sha256: SHA_A}], writer), 400, 'DFS_ERR_BAD_REQUEST', 'an upload without its size')
    assert.deepEqual((await cluster.dfsJson(['ls'])) as unknown[], [], 'the refused batches gave out nothing that was stored')

    const taken = join(clusters.work, 'taken.bin')
    await randomFile(taken, 100)
    assert.equal((await cluster.dfs(['put', taken])).code, 0)
    // Load counts tickets handed out since each keeper's last heartbeat: start from none.
    await waitFor('both keepers idle', async () => {
      const keepers = (await cluster.masterJson<{keepers: KeeperInfo[]}>('/keepers')).body.keepers
      return keepers.length === 2 && keepers.every((keeper) => keeper.alive && keeper.activeTransfers === 0)
    })

    const sources = new Map<string, {data: Buffer; sha256: string}>()
    for (const name of ['one.bin', 'two.bin', 'three.bin', 'four.bin']) {
      const path = join(clusters.work, name)
      sources.set(name, {sha256: await randomFile(path, 1000), data: await readFile(path)})
    }
    const upload = (name: string) => ({name, size: 1000, sha256: sources.get(name)!.sha256})
    const answer = await askTickets(
      cluster,
      [upload('one.bin'), {...good, name: 'a/../b'}, upload('two.bin'), {...good, name: 'taken.bin'}, upload('three.bin'), {...good, name: 'huge.bin', size: 2 ** 52}, upload('four.bin')],
      writer,
    )
    assert.equal(answer.status, 201, JSON.stringify(answer.body))
    const tickets = (answer.body as UploadBatchTickets).tickets
    assert.equal(tickets.length, 7)
    assert.equal((tickets[1] as {error: string}).error, 'DFS_ERR_INVALID_NAME')
    assert.equal((tickets[3] as {error: string}).error, 'DFS_ERR_EXISTS')
    assert.equal((tickets[5] as {error: string}).error, 'DFS_ERR_INSUFFICIENT_STORAGE')
    const granted = [0, 2, 4, 6].map((index) => tickets[index] as {uploadId: string; keeper: {id: string; url: string}; grant: string})
    // As four single tickets would go: two to each of the two idle keepers.
    const perKeeper = new Map<string, number>()
    for (const ticket of granted) perKeeper.set(ticket.keeper.id, (perKeeper.get(ticket.keeper.id) ?? 0) + 1)
    assert.deepEqual([...perKeeper.values()], [2, 2], JSON.stringify(granted.map((ticket) => ticket.keeper.id)))

    for (const [index, name] of ['one.bin', 'two.bin', 'three.bin', 'four.bin'].entries()) {
      const ticket = granted[index]!
      const {data, sha256} = sources.get(name)!
      const put = await fetch(`${ticket.keeper.url}/files/${name}?upload=${ticket.uploadId}`, {
        method: 'PUT',
        headers: {'content-type': 'application/octet-stream', [SHA256_HEADER]: sha256, [GRANT_HEADER]: ticket.grant},
        body: new Uint8Array(data),
      })
      assert.equal(put.status, 201, await put.text())
      const recorded = await cluster.stat(name)
      assert.deepEqual([recorded.fileId, recorded.sha256, recorded.replicas.map((replica) => replica.keeper)], [ticket.uploadId, sha256, [ticket.keeper.id]])
    }
  })

  test('POST /uploads/commits: only a member, speaking for itself; each commit checked on its own, and only the good ones recorded', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const writer = bearer(await tokenOf(cluster, 'write'))
    const real = cluster.keepers[0]!
    // A keeper of our own making, with the key: it registers and may commit only its own uploads.
    const stats = {url: 'http://127.0.0.1:9', freeBytes: 1_000_000, storedBytes: 0, fileCount: 0, activeTransfers: 0}
    const fresh = newMember('keeper')
    const joined = await asMember(cluster, '/keepers', {...stats, inventory: []}, fresh)
    assert.equal(joined.status, 200, JSON.stringify(joined.body))
    const fake: Member = {...fresh, keeperId: joined.body.id as string}

    const ticketAt = async (name: string, keeper: string) => {
      const others = [real.id, fake.keeperId!].filter((id) => id !== keeper)
      const answer = await askTickets(cluster, [{name, size: 5, sha256: SHA_A, exclude: others}], writer)
      const [ticket] = (answer.body as UploadBatchTickets).tickets as Array<{uploadId: string; keeper: {id: string}}>
      assert.equal(ticket?.keeper.id, keeper, JSON.stringify(answer.body))
      return ticket.uploadId
    }

    const own = await ticketAt('own.bin', fake.keeperId!)
    const badSum = await ticketAt('bad-sum.bin', fake.keeperId!)
    const others = await ticketAt('others.bin', real.id)
    const commit = (uploadId: string, name: string, changes: Record<string, unknown> = {}) => ({uploadId, keeperId: fake.keeperId, name, size: 5, sha256: SHA_A, ...changes})
    const batch = {keeperId: fake.keeperId, commits: [commit(own, 'own.bin')]}

    assertError(await asMember(cluster, '/uploads/commits', batch), 401, 'DFS_ERR_UNAUTHENTICATED', 'no member credential')
    const withToken = await json<any>(`${cluster.masterUrl}/uploads/commits`, {method: 'POST', headers: {...writer, 'content-type': 'application/json'}, body: JSON.stringify(batch)})
    assertError(withToken, 401, 'DFS_ERR_UNAUTHENTICATED', 'a client token')
    assertError(await asMember(cluster, '/uploads/commits', {keeperId: real.id, commits: [commit(others, 'others.bin', {keeperId: real.id})]}, fake), 403, 'DFS_ERR_FORBIDDEN', 'a batch for another keeper')
    assertError(await asMember(cluster, '/uploads/commits', {keeperId: fake.keeperId, commits: []}, fake), 400, 'DFS_ERR_BAD_REQUEST', 'no commit')
    const tooMany = Array.from({length: MAX_UPLOAD_BATCH + 1}, () => commit(own, 'own.bin'))
    assertError(await asMember(cluster, '/uploads/commits', {keeperId: fake.keeperId, commits: tooMany}, fake), 400, 'DFS_ERR_BAD_REQUEST', `${MAX_UPLOAD_BATCH + 1} commits`)
    assertError(await asMember(cluster, '/uploads/commits', {keeperId: fake.keeperId, commits: [{...commit(own, 'own.bin'), size: -1}]}, fake), 400, 'DFS_ERR_BAD_REQUEST', 'a negative size')

    const answer = await asMember(
      cluster,
      '/uploads/commits',
      {
        keeperId: fake.keeperId,
        commits: [
          commit(others, 'others.bin'),
          commit(others, 'others.bin', {keeperId: real.id}),
          commit(badSum, 'bad-sum.bin', {sha256: 'b'.repeat(64)}),
          commit('unknownUpload1', 'nothing.bin'),
          commit(own, 'own.bin'),
        ],
      },
      fake,
    )
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    const codes = (answer.body.commits as Array<{uploadId: string; fileId?: string; error?: string}>).map((entry) => [entry.uploadId, entry.error ?? entry.fileId])
    assert.deepEqual(codes, [
      [others, 'DFS_ERR_FORBIDDEN'],
      [others, 'DFS_ERR_FORBIDDEN'],
      [badSum, 'DFS_ERR_CHECKSUM_MISMATCH'],
      ['unknownUpload1', 'DFS_ERR_UNKNOWN_UPLOAD'],
      [own, own],
    ])
    const recorded = await cluster.stat('own.bin')
    assert.deepEqual([recorded.fileId, recorded.replicas.map((replica) => replica.keeper)], [own, [fake.keeperId]])
    for (const name of ['others.bin', 'bad-sum.bin']) assert.equal((await cluster.masterJson(`/files/${name}`)).status, 404, name)
  })

  test('put of many files to an honest keeper and a lying one: each file confirmed only if the master recorded this very upload (exit 10, the others stored)', async (t) => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const {proxy} = await startProxiedKeeper(t, cluster, join(cluster.dir, 'keeper-behind-proxy'))
    await waitFor('both keepers alive', async () => (await cluster.keeperStatus()).filter((keeper) => keeper.alive).length === 2)
    const sources = new Map<string, string>()
    const paths: string[] = []
    for (let index = 0; index < 8; index++) {
      const path = join(clusters.work, `many-${index}.bin`)
      sources.set(`many-${index}.bin`, await randomFile(path, 20_000 + index))
      paths.push(path)
    }

    proxy.fakeStores = true
    const put = await cluster.dfs(['put', ...paths, '--json'])
    const outcomes = assertPutOutcomes(put, paths.length, sources)
    const stored = outcomes.filter((outcome) => 'sha256' in outcome) as unknown as Array<{name: string; keeper: string; sha256: string}>
    const failed = outcomes.filter((outcome) => !('sha256' in outcome)) as Array<{error: string}>
    assert.ok(stored.length > 0 && failed.length > 0, put.stdout)
    for (const failure of failed) assert.equal(failure.error, 'DFS_ERR_INTEGRITY')
    assert.deepEqual(
      ((await cluster.dfsJson(['ls'])) as Array<{name: string}>).map((file) => file.name),
      stored.map((file) => file.name).sort(),
    )
    for (const file of stored) {
      assert.equal(file.keeper, cluster.keepers[0]!.id)
      const out = join(clusters.work, `${file.name}.copy`)
      assert.equal((await cluster.dfs(['get', file.name, '-o', out])).code, 0)
      assert.equal(await sha256File(out), sources.get(file.name))
    }
  })
})
