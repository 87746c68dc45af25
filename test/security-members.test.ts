// Attacks of issue 7 on the members of a cluster (the master and its keepers), against real
// processes with auth on. A fake keeper is the test itself speaking raw HTTP: with no credential,
// with a credential made with another key, or, to prove that a member speaks only for itself, with
// this cluster's key under an identity that is not its own. Each attack is refused with the
// catalogue's 401 or 403, and afterwards every file reads back byte-exact and fsck counts true.

import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {once} from 'node:events'
import {rm} from 'node:fs/promises'
import {createServer} from 'node:http'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {ClusterKey, createKeyFile} from '../src/lib/cluster-key.js'
import {mintClientToken} from '../src/lib/client-tokens.js'
import {verifyGrant} from '../src/lib/grants.js'
import {MEMBER_HEADER, mintMemberCredential, newMember, type Member, type Recipient} from '../src/lib/member-auth.js'
import {MAX_EXCLUDE} from '../src/lib/protocol.js'
import {Master} from '../src/roles/master/master.js'
import {clusterPerTest, json, randomFile, sha256File, tempDir, waitFor, type TestCluster} from './helpers/cluster.js'
import {startProxiedKeeper} from './helpers/keeper-proxy.js'
import {runRefusedStart} from './helpers/refused-start.js'

type Answer = {status: number; body: any}

/** Who a raw request claims to be: nobody (no credential), or a member under a key. */
type Speaker = undefined | {key: ClusterKey; member: Member}

/** A raw request of a fake member: JSON body, and a member credential for exactly this request if `as` is given. */
async function speak(base: string, method: string, path: string, body: unknown, as: Speaker, to: Recipient): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (as) headers[MEMBER_HEADER] = await mintMemberCredential(as.key, as.member, {method, path, to})
  return json<any>(`${base}${path}`, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)})
}

function assertRefused(answer: Answer, code: 'DFS_ERR_UNAUTHENTICATED' | 'DFS_ERR_FORBIDDEN' | 'DFS_ERR_KEEPER_IN_USE', what: string): void {
  const status = {DFS_ERR_UNAUTHENTICATED: 401, DFS_ERR_FORBIDDEN: 403, DFS_ERR_KEEPER_IN_USE: 409}[code]
  assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer.body)}`)
  assert.equal(answer.body.error, code, what)
  assert.equal(typeof answer.body.message, 'string', what)
}

/** Headers of a client with an admin token (the client routes' checks are another part of issue 7). */
async function clientHeaders(cluster: TestCluster): Promise<Record<string, string>> {
  const {token} = await mintClientToken(await ClusterKey.load(cluster.secretFile), {scope: 'admin', ttlMs: 3_600_000})
  return {authorization: `Bearer ${token}`, 'content-type': 'application/json'}
}

interface StoredTestFile {
  name: string
  path: string
  sha256: string
  size: number
}

/** Stores `count` random files through the CLI and waits for their replicas. */
async function storeFiles(cluster: TestCluster, work: string, count: number, replicas: number): Promise<StoredTestFile[]> {
  const files: StoredTestFile[] = []
  for (let index = 0; index < count; index++) {
    const name = `kept-${index}.bin`
    const path = join(work, name)
    const size = 200_000 + index * 1000
    files.push({name, path, size, sha256: await randomFile(path, size)})
  }

  const put = await cluster.dfs(['put', ...files.map((file) => file.path)])
  assert.equal(put.code, 0, put.stderr)
  for (const file of files) await cluster.waitForReplicas(file.name, replicas)
  return files
}

/**
 * Every file reads back byte-exact, and fsck counts what is true: every file at its target on
 * alive keepers, no corrupt replica, `keepers` keepers of which `alive` alive. The real keepers
 * keep their own URLs.
 */
async function assertIntact(cluster: TestCluster, work: string, files: StoredTestFile[], counts: {keepers: number; alive: number; replicas: number}): Promise<void> {
  for (const file of files) {
    const out = join(work, `${file.name}.${randomBytes(4).toString('hex')}.back`)
    const get = await cluster.dfs(['get', file.name, '-o', out])
    assert.equal(get.code, 0, get.stderr)
    assert.equal(await sha256File(out), file.sha256, file.name)
    const info = await cluster.stat(file.name)
    assert.equal(info.replicas.filter((replica) => replica.alive).length, counts.replicas, `${file.name}: ${JSON.stringify(info.replicas)}`)
  }

  const fsck = await cluster.dfsJson<{status: string; summary: Record<string, number>}>(['fsck'])
  assert.equal(fsck.status, 'healthy')
  assert.deepEqual(fsck.summary, {
    files: files.length,
    healthy: files.length,
    underReplicated: 0,
    overReplicated: 0,
    singleZone: 0,
    missing: 0,
    corrupt: 0,
    aliveKeepers: counts.alive,
    keepers: counts.keepers,
  })
  const status = await cluster.keeperStatus()
  for (const keeper of cluster.keepers) {
    const seen = status.find((entry) => entry.id === keeper.id)
    assert.ok(seen?.alive, `keeper ${keeper.id} alive`)
    assert.equal(seen.url, keeper.url, `keeper ${keeper.id} keeps its own URL`)
  }
}

describe('security: only members of the cluster speak as members', () => {
  const clusters = clusterPerTest()

  test('a fake keeper with no key or a wrong key cannot register, heartbeat, commit or report', async () => {
    const cluster = await clusters.start({keepers: 4, replicas: 3})
    const files = await storeFiles(cluster, clusters.work, 2, 3)
    const wrongKey = await ClusterKey.fromBytes(randomBytes(32))
    const live = cluster.keepers[0]!
    const speakers: Array<[string, Speaker]> = [
      ['no credential', undefined],
      ['a new keeper under a wrong key', {key: wrongKey, member: newMember('keeper')}],
      [`keeper ${live.id} under a wrong key`, {key: wrongKey, member: newMember('keeper', live.id)}],
    ]
    const master = cluster.masterUrl
    const infos = await Promise.all(files.map((file) => cluster.stat(file.name)))
    // The public list of files, turned into an inventory claiming every one.
    const inventory = infos.map((info) => ({fileId: info.fileId, name: info.name, size: info.size, sha256: info.sha256}))
    const stats = {url: 'http://127.0.0.1:9', freeBytes: 1e12, storedBytes: 0, fileCount: inventory.length, activeTransfers: 0}
    const client = await clientHeaders(cluster)

    for (const [who, as] of speakers) {
      assertRefused(await speak(master, 'POST', '/keepers', {...stats, inventory}, as, 'master'), 'DFS_ERR_UNAUTHENTICATED', `${who}: registration with a copied inventory`)
      assertRefused(await speak(master, 'POST', '/keepers', {...stats, id: live.id, url: live.url, inventory: []}, as, 'master'), 'DFS_ERR_UNAUTHENTICATED', `${who}: registration as ${live.id} with nothing`)
      assertRefused(await speak(master, 'POST', `/keepers/${live.id}/heartbeat`, stats, as, 'master'), 'DFS_ERR_UNAUTHENTICATED', `${who}: heartbeat of ${live.id} with another URL`)
      for (const info of infos) {
        for (const replica of info.replicas) {
          const report = {keeperId: replica.keeper, fileId: info.fileId}
          assertRefused(await speak(master, 'POST', `/files/${info.name}/corrupt`, report, as, 'master'), 'DFS_ERR_UNAUTHENTICATED', `${who}: corrupt report for ${replica.keeper}`)
        }

        const outsider = cluster.keepers.find((keeper) => !info.replicas.some((replica) => replica.keeper === keeper.id))!
        const claim = {keeperId: outsider.id, fileId: info.fileId, size: info.size, sha256: info.sha256}
        assertRefused(await speak(master, 'POST', `/files/${info.name}/replicas`, claim, as, 'master'), 'DFS_ERR_UNAUTHENTICATED', `${who}: a copy never made`)
        const batch = {keeperId: outsider.id, copies: [{fileId: info.fileId, name: info.name, size: info.size, sha256: info.sha256}]}
        assertRefused(await speak(master, 'POST', '/replicas', batch, as, 'master'), 'DFS_ERR_UNAUTHENTICATED', `${who}: a batch of copies never made`)
      }

      const squatted = `squatted-${randomBytes(3).toString('hex')}.bin`
      const ticket = await json<{uploadId: string; keeper: {id: string}}>(`${master}/uploads`, {method: 'POST', headers: client, body: JSON.stringify({name: squatted, size: 5, sha256: 'f'.repeat(64)})})
      assert.equal(ticket.status, 201, JSON.stringify(ticket.body))
      // `path` as in the attack filed; the protocol has no such field any more and drops it unread.
      const commit = {keeperId: ticket.body.keeper.id, name: squatted, size: 5, sha256: 'f'.repeat(64), path: '/etc/passwd'}
      assertRefused(await speak(master, 'POST', `/uploads/${ticket.body.uploadId}/commit`, commit, as, 'master'), 'DFS_ERR_UNAUTHENTICATED', `${who}: commit with a made-up sha256`)
      assert.equal((await json(`${master}/files/${squatted}`, {headers: client})).status, 404, 'the name is not squatted')
    }

    await assertIntact(cluster, clusters.work, files, {keepers: 4, alive: 4, replicas: 3})
  })

  test('a member with the key speaks only for itself: no heartbeat, commit, copy or corruption report for another, and no second process with a live keeper\'s id', async () => {
    const cluster = await clusters.start({keepers: 4, replicas: 3})
    const files = await storeFiles(cluster, clusters.work, 2, 3)
    const key = await ClusterKey.load(cluster.secretFile)
    const master = cluster.masterUrl
    const client = await clientHeaders(cluster)
    const stats = {url: 'http://127.0.0.1:9', freeBytes: 0, storedBytes: 0, fileCount: 0, activeTransfers: 0}

    // A keeper of our own making joins (it has the key); it never sends a heartbeat, so it dies soon.
    const fake = newMember('keeper')
    const joined = await speak(master, 'POST', '/keepers', {...stats, inventory: []}, {key, member: fake}, 'master')
    assert.equal(joined.status, 200, JSON.stringify(joined.body))
    const as = {key, member: {...fake, keeperId: joined.body.id as string}}
    const real = cluster.keepers[0]!

    assertRefused(await speak(master, 'POST', `/keepers/${real.id}/heartbeat`, {...stats, url: real.url}, as, 'master'), 'DFS_ERR_FORBIDDEN', 'a heartbeat for another keeper')
    assertRefused(await speak(master, 'POST', '/keepers', {...stats, id: real.id, inventory: []}, as, 'master'), 'DFS_ERR_FORBIDDEN', 'a registration under another keeper\'s id')
    const twin = {key, member: newMember('keeper', real.id)}
    assertRefused(await speak(master, 'POST', '/keepers', {...stats, id: real.id, url: real.url, inventory: []}, twin, 'master'), 'DFS_ERR_KEEPER_IN_USE', 'a second process with a live keeper\'s id')
    assertRefused(await speak(master, 'POST', `/keepers/${real.id}/heartbeat`, {...stats, url: real.url}, twin, 'master'), 'DFS_ERR_FORBIDDEN', 'a heartbeat of a second process with a live keeper\'s id')

    // A ticket for a real keeper: the fake cannot commit it, neither as itself nor for that keeper.
    const name = 'squatted.bin'
    const ticket = await json<{uploadId: string; keeper: {id: string}}>(`${master}/uploads`, {
      method: 'POST',
      headers: client,
      body: JSON.stringify({name, size: 5, sha256: 'f'.repeat(64), exclude: [as.member.keeperId]}),
    })
    assert.equal(ticket.status, 201, JSON.stringify(ticket.body))
    const commit = {name, size: 5, sha256: 'f'.repeat(64), path: '/etc/passwd'}
    const commitPath = `/uploads/${ticket.body.uploadId}/commit`
    assertRefused(await speak(master, 'POST', commitPath, {...commit, keeperId: as.member.keeperId}, as, 'master'), 'DFS_ERR_FORBIDDEN', 'a commit by a keeper the ticket does not name')
    assertRefused(await speak(master, 'POST', commitPath, {...commit, keeperId: ticket.body.keeper.id}, as, 'master'), 'DFS_ERR_FORBIDDEN', 'a commit for the keeper the ticket names')

    for (const file of files) {
      const info = await cluster.stat(file.name)
      const claim = {keeperId: as.member.keeperId, fileId: info.fileId, size: info.size, sha256: info.sha256}
      assertRefused(await speak(master, 'POST', `/files/${file.name}/replicas`, claim, as, 'master'), 'DFS_ERR_FORBIDDEN', 'a report of a copy never ordered')
      const copy = {fileId: info.fileId, name: info.name, size: info.size, sha256: info.sha256}
      // In a batch, each copy never ordered is refused on its own, and none counts.
      const batch = await speak(master, 'POST', '/replicas', {keeperId: as.member.keeperId, copies: [copy, copy]}, as, 'master')
      assert.equal(batch.status, 200, JSON.stringify(batch.body))
      assert.deepEqual(batch.body.copies.map((answer: {counted: boolean; error?: string}) => [answer.counted, answer.error]), [[false, 'DFS_ERR_FORBIDDEN'], [false, 'DFS_ERR_FORBIDDEN']], 'a batch of copies never ordered')
      assertRefused(await speak(master, 'POST', '/replicas', {keeperId: real.id, copies: [copy]}, as, 'master'), 'DFS_ERR_FORBIDDEN', 'a batch of copies for another keeper')
      for (const replica of info.replicas) {
        const forOther = await speak(master, 'POST', `/files/${file.name}/corrupt`, {keeperId: replica.keeper, fileId: info.fileId}, as, 'master')
        assertRefused(forOther, 'DFS_ERR_FORBIDDEN', `a corruption report for ${replica.keeper}`)
      }

      // For itself, of a replica it does not hold: nothing to drop.
      const own = await speak(master, 'POST', `/files/${file.name}/corrupt`, {keeperId: as.member.keeperId, fileId: info.fileId}, as, 'master')
      assert.deepEqual([own.status, own.body], [200, {dropped: false}])
    }

    await waitFor('the fake keeper declared dead', async () => (await cluster.keeperStatus()).find((keeper) => keeper.id === as.member.keeperId)?.alive === false)
    assert.equal((await json(`${master}/files/${name}`, {headers: client})).status, 404, 'the name is not squatted')
    await assertIntact(cluster, clusters.work, files, {keepers: 5, alive: 4, replicas: 3})
  })

  test('a keeper takes copy, delete and verify orders from the master only', async () => {
    const cluster = await clusters.start({keepers: 3, replicas: 3})
    const files = await storeFiles(cluster, clusters.work, 1, 3)
    const file = files[0]!
    const info = await cluster.stat(file.name)
    const key = await ClusterKey.load(cluster.secretFile)
    const wrongKey = await ClusterKey.fromBytes(randomBytes(32))
    // Where a keeper would be sent to fetch from (a limited SSRF): nobody may come.
    let trapped = 0
    const trap = createServer((request, response) => {
      trapped++
      response.end()
    })
    trap.listen(0, '127.0.0.1')
    await once(trap, 'listening')
    const trapUrl = `http://127.0.0.1:${(trap.address() as {port: number}).port}`
    try {
      for (const keeper of cluster.keepers) {
        const to = {keeperId: keeper.id}
        const speakers: Array<[string, Speaker, 'DFS_ERR_UNAUTHENTICATED' | 'DFS_ERR_FORBIDDEN']> = [
          ['no credential', undefined, 'DFS_ERR_UNAUTHENTICATED'],
          ['the master under a wrong key', {key: wrongKey, member: newMember('master')}, 'DFS_ERR_UNAUTHENTICATED'],
          ['a keeper with the key', {key, member: newMember('keeper', cluster.keepers.find((other) => other !== keeper)!.id)}, 'DFS_ERR_FORBIDDEN'],
        ]
        for (const [who, as, code] of speakers) {
          assertRefused(await speak(keeper.url, 'DELETE', `/files/${file.name}`, undefined, as, to), code, `${who}: DELETE without a generation on ${keeper.id}`)
          assertRefused(await speak(keeper.url, 'DELETE', `/files/${file.name}?fileId=${info.fileId}`, undefined, as, to), code, `${who}: DELETE on ${keeper.id}`)
          const order = {fileId: 'stolen1', name: 'stolen.bin', size: 5, sha256: 'f'.repeat(64), source: trapUrl}
          assertRefused(await speak(keeper.url, 'POST', '/replicate', order, as, to), code, `${who}: copy order to ${keeper.id}`)
          assertRefused(await speak(keeper.url, 'POST', '/replicate/batch', {copies: [order]}, as, to), code, `${who}: batched copy order to ${keeper.id}`)
          assertRefused(await speak(keeper.url, 'POST', `/files/${file.name}/verify?fileId=${info.fileId}`, undefined, as, to), code, `${who}: verify order to ${keeper.id}`)
        }

        // A master credential for another keeper is no order for this one.
        const forOther = await speak(keeper.url, 'DELETE', `/files/${file.name}?fileId=${info.fileId}`, undefined, {key, member: newMember('master')}, {keeperId: 'kother'})
        assertRefused(forOther, 'DFS_ERR_UNAUTHENTICATED', `a delete order for another keeper on ${keeper.id}`)

        // `dfs rm` pointed at a keeper by mistake deletes nothing.
        const rm = await cluster.dfs(['rm', file.name, '--master', keeper.url])
        assert.notEqual(rm.code, 0, rm.stdout)
        assert.equal(rm.stderr.trim().split('\n').length, 1, rm.stderr)
      }
    } finally {
      trap.close()
    }

    assert.equal(trapped, 0, 'no keeper fetched from the source a fake order named')
    await assertIntact(cluster, clusters.work, files, {keepers: 3, alive: 3, replicas: 3})
    for (const replica of (await cluster.stat(file.name)).replicas) assert.equal(await sha256File(cluster.blobPath(replica.keeper, info.fileId)), file.sha256)
  })

  test('a copy is pulled with the master\'s replicate-from grant for its source', async (t) => {
    const cluster = await clusters.start({keepers: 0, replicas: 2})
    const {keeper: source, proxy} = await startProxiedKeeper(t, cluster, join(cluster.dir, 'source'))
    const files = await storeFiles(cluster, clusters.work, 1, 1)
    const {fileId, name} = await cluster.stat(files[0]!.name)
    await cluster.addKeeper()
    await cluster.waitForReplicas(name, 2)
    assert.ok(proxy.grants.length > 0, 'the pull showed a grant')
    const key = await ClusterKey.load(cluster.secretFile)
    for (const grant of proxy.grants) {
      const claims = await verifyGrant(key, grant, {ops: ['replicate-from'], keeperId: source.id, name, fileId})
      assert.equal(claims.op, 'replicate-from')
    }

    await assertIntact(cluster, clusters.work, files, {keepers: 2, alive: 2, replicas: 2})
  })

  test('a keeper with a wrong key cannot join', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const files = await storeFiles(cluster, clusters.work, 1, 1)
    const wrongKeyFile = join(cluster.dir, 'wrong-secret')
    await createKeyFile(wrongKeyFile)
    const refused = await runRefusedStart(['keeper', '--master', cluster.masterUrl, '--data', join(cluster.dir, 'intruder'), '--port', '0', '--secret-file', wrongKeyFile])
    assert.equal(refused.started, false, refused.stdout)
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /member credential was not signed with this cluster's key/)
    assert.equal((await cluster.keeperStatus()).length, 1)
    await assertIntact(cluster, clusters.work, files, {keepers: 1, alive: 1, replicas: 1})
  })

  test('a keeper restarted at once comes back with its id once the master has seen its old process dead', async () => {
    // A long timeout, so that the restart asks while the old process still counts as alive: 4 s was
    // not enough on a loaded machine (a node start took longer), 20 s leaves room for that.
    const cluster = await clusters.start({keepers: 2, replicas: 2, masterArgs: ['--heartbeat-timeout', '20s']})
    const files = await storeFiles(cluster, clusters.work, 1, 2)
    const victim = cluster.keepers[0]!
    await victim.stop('SIGKILL')
    const back = await cluster.addKeeper(cluster.dataDirOf(victim))
    assert.equal(back.id, victim.id)
    assert.ok(back.logs.some((line) => line.includes('DFS_ERR_KEEPER_IN_USE') || line.includes('is alive as another process')), back.logs.join('\n'))
    await assertIntact(cluster, clusters.work, files, {keepers: 2, alive: 2, replicas: 2})
  })

  test(`an upload may exclude at most ${MAX_EXCLUDE} keepers`, async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const client = await clientHeaders(cluster)
    const ask = (exclude: string[]) => json<any>(`${cluster.masterUrl}/uploads`, {method: 'POST', headers: client, body: JSON.stringify({name: 'x.bin', size: 1, sha256: 'f'.repeat(64), exclude})})
    const many = Array.from({length: 1000}, (_, index) => `k${index}`)
    const tooMany = await ask(many)
    assert.equal(tooMany.status, 400, JSON.stringify(tooMany.body))
    assert.equal(tooMany.body.error, 'DFS_ERR_BAD_REQUEST')
    assert.equal((await ask(many.slice(0, MAX_EXCLUDE + 1))).status, 400)
    assert.equal((await ask(many.slice(0, MAX_EXCLUDE))).status, 201)
  })

  // The cap over HTTP, at a small size (--max-pending-uploads): 10,000 requests would take minutes.
  test('uploads begun and not committed are capped: one past the cap is refused with 429', async () => {
    const cap = 40
    const cluster = await clusters.start({keepers: 1, replicas: 1, masterArgs: ['--max-pending-uploads', String(cap)]})
    const client = await clientHeaders(cluster)
    const begin = (index: number) =>
      json<any>(`${cluster.masterUrl}/uploads`, {method: 'POST', headers: client, body: JSON.stringify({name: `pending-${index}.bin`, size: 1, sha256: 'f'.repeat(64)})})
    const answers = await Promise.all(Array.from({length: cap}, (_, index) => begin(index)))
    for (const answer of answers) assert.equal(answer.status, 201, JSON.stringify(answer.body))

    const refused = await begin(cap)
    assert.equal(refused.status, 429, JSON.stringify(refused.body))
    assert.equal(refused.body.error, 'DFS_ERR_TOO_MANY_UPLOADS')
  })

  // The default cap, on the master's own logic (no HTTP): 10,000 tickets take well under a second.
  test('without --max-pending-uploads the cap is 10,000', async () => {
    const dir = await tempDir()
    const master = new Master({dataDir: dir, replicas: 1, heartbeatTimeoutMs: 60_000, replicationIntervalMs: 3_600_000, log: {info() {}, warn() {}}})
    try {
      master.register({id: 'kA', url: 'http://127.0.0.1:1', freeBytes: 1e12, storedBytes: 0, fileCount: 0, activeTransfers: 0, inventory: []})
      const upload = (index: number) => master.beginUpload({name: `pending-${index}.bin`, size: 1, sha256: 'f'.repeat(64)})
      for (let index = 0; index < 10_000; index++) await upload(index)
      await assert.rejects(upload(10_000), (error: {code?: string}) => error.code === 'DFS_ERR_TOO_MANY_UPLOADS')
    } finally {
      await master.stop()
      await rm(dir, {recursive: true, force: true})
    }
  })
})
