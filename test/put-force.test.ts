import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {TestCluster, dfs, randomFile, sha256File, tempDir, waitFor} from './helpers/cluster.js'
import {holdUpload} from './helpers/held-upload.js'
import {HttpProxy} from './helpers/http-proxy.js'

// One cluster for the suite; every test stores the files it needs under names of its own.
describe('put --force replaces a file with a new generation', () => {
  let cluster: TestCluster
  let work: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 3, replicas: 2})
    work = await tempDir()
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  async function put(name: string, content: string, ...flags: string[]) {
    const path = join(work, `${name.replaceAll('/', '_')}-${content.length}`)
    await writeFile(path, content)
    return cluster.dfs(['put', path, '--name', name, ...flags])
  }

  test('without --force an existing name is refused and the stored file kept; with it the new bytes are served', async () => {
    assert.equal((await put('replaced.txt', 'old bytes')).code, 0)
    const old = await cluster.stat('replaced.txt')
    const refused = await put('replaced.txt', 'new bytes!')
    assert.equal(refused.code, 4, refused.stderr)
    assert.match(refused.stderr, /already exists/)
    assert.equal((await cluster.stat('replaced.txt')).fileId, old.fileId)

    const forced = await put('replaced.txt', 'new bytes!', '--force')
    assert.equal(forced.code, 0, forced.stderr)
    const now = await cluster.stat('replaced.txt')
    assert.notEqual(now.fileId, old.fileId)
    assert.equal(now.size, 'new bytes!'.length)
    const out = await cluster.dfs(['get', 'replaced.txt', '-o', '-'])
    assert.equal(out.stdout, 'new bytes!')

    // The old generation's replicas are deleted from the keepers' disks, the new one is copied to its target.
    await waitFor('the old replicas to be deleted', () => old.replicas.every((replica) => !existsSync(cluster.blobPath(replica.keeper, old.fileId))))
    await cluster.waitForReplicas('replaced.txt', 2)
    const listed = await cluster.dfsJson<Array<{name: string}>>(['ls', 'replaced.txt'])
    assert.deepEqual(listed.map((file) => file.name), ['replaced.txt'])
  })

  test('--force stores a name that does not exist yet', async () => {
    const forced = await put('fresh/forced.txt', 'first', '--force')
    assert.equal(forced.code, 0, forced.stderr)
    assert.equal((await cluster.dfs(['get', 'fresh/forced.txt', '-o', '-'])).stdout, 'first')
  })

  test('until the new generation is recorded, the old one is listed, served whole and kept on disk', async () => {
    assert.equal((await put('held.bin', 'the old generation')).code, 0)
    const old = await cluster.stat('held.bin')
    const held = await holdUpload(cluster.masterUrl, cluster.token, 'held.bin', 4 * 1024 * 1024, {replace: true})
    try {
      // Half of the new bytes are on a keeper: nothing has changed for readers.
      const during = await cluster.dfs(['get', 'held.bin', '-o', '-'])
      assert.equal(during.code, 0, during.stderr)
      assert.equal(during.stdout, 'the old generation')
      assert.equal((await cluster.stat('held.bin')).fileId, old.fileId)
      for (const replica of old.replicas) assert.ok(existsSync(cluster.blobPath(replica.keeper, old.fileId)), replica.keeper)
    } finally {
      held.release()
    }

    const answer = await held.response
    assert.ok('status' in answer && answer.status === 201, JSON.stringify(answer))
    assert.equal((await cluster.stat('held.bin')).sha256, held.sha256)
    await waitFor('the old replicas to be deleted', () => old.replicas.every((replica) => !existsSync(cluster.blobPath(replica.keeper, old.fileId))))
  })

  test('a get that looked the old generation up after it was replaced and deleted gets the new file whole', async () => {
    const oldPath = join(work, 'race-old.bin')
    const newPath = join(work, 'race-new.bin')
    await randomFile(oldPath, 2 * 1024 * 1024)
    const newSha = await randomFile(newPath, 3 * 1024 * 1024)
    assert.equal((await cluster.dfs(['put', oldPath, '--name', 'race.bin'])).code, 0)
    const old = await cluster.stat('race.bin')

    // The get's look-up is answered with the old generation, but that answer is held back until
    // the new generation is recorded and every old replica is gone from the keepers.
    let lookups = 0
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    const proxy = await HttpProxy.start(cluster.masterUrl, {
      async beforeAnswer(exchange) {
        if (exchange.method === 'GET' && exchange.path.startsWith('/files/race.bin') && lookups++ === 0) await released
      },
    })
    try {
      const out = join(work, 'race-got.bin')
      const get = dfs(['get', 'race.bin', '-o', out, '--range-size', '256KiB', '--master', proxy.url, '--token', cluster.token])
      await waitFor('the get to look the file up', () => lookups > 0)
      const forced = await cluster.dfs(['put', newPath, '--name', 'race.bin', '--force'])
      assert.equal(forced.code, 0, forced.stderr)
      await waitFor('the old replicas to be deleted', () => old.replicas.every((replica) => !existsSync(cluster.blobPath(replica.keeper, old.fileId))))
      release()
      const got = await get
      assert.equal(got.code, 0, got.stderr)
      assert.equal(await sha256File(out), newSha)
      // It looked the file up again after the old generation's replicas answered that they were gone.
      assert.ok(lookups >= 2, `${lookups} look-ups`)
    } finally {
      release()
      await proxy.close()
    }
  })
})
