import assert from 'node:assert/strict'
import {rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {TestCluster, randomFile, readJson, sha256File, tempDir, waitFor} from './helpers/cluster.js'

// One cluster for the suite (secure: reads carry grants for the name); every test uses names of its own.
describe('dfs mv renames a file in the master, no bytes move', () => {
  let cluster: TestCluster
  let work: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 2, replicas: 2})
    work = await tempDir()
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  async function put(name: string, content: string) {
    const path = join(work, name.replaceAll('/', '_'))
    await writeFile(path, content)
    const result = await cluster.dfs(['put', path, '--name', name])
    assert.equal(result.code, 0, result.stderr)
  }

  test('the new name serves the same bytes at once, the old one is gone', async () => {
    const source = join(work, 'moved.bin')
    const sha256 = await randomFile(source, 3 * 1024 * 1024 + 17)
    assert.equal((await cluster.dfs(['put', source, '--name', 'moved.bin'])).code, 0)
    const before = await cluster.stat('moved.bin')

    const moved = await cluster.dfsJson<Array<{name: string; to: string; fileId: string}>>(['mv', 'moved.bin', 'videos/renamed.bin', '--json'])
    assert.deepEqual(moved, [{name: 'moved.bin', to: 'videos/renamed.bin', fileId: before.fileId}])

    const after = await cluster.stat('videos/renamed.bin')
    assert.equal(after.fileId, before.fileId, 'the same generation: no bytes moved')
    const out = join(work, 'renamed.copy')
    const got = await cluster.dfs(['get', 'videos/renamed.bin', '-o', out])
    assert.equal(got.code, 0, got.stderr)
    assert.equal(await sha256File(out), sha256)

    const old = await cluster.dfs(['get', 'moved.bin', '-o', join(work, 'old.copy')])
    assert.equal(old.code, 3, old.stderr)
    assert.match(old.stderr, /no file named "moved.bin"/)
    const listed = await cluster.dfsJson<Array<{name: string}>>(['ls', 'videos/'])
    assert.deepEqual(listed.map((file) => file.name), ['videos/renamed.bin'])
  })

  test('onto a taken name, from a missing one, or to an invalid name: refused, nothing changes', async () => {
    await put('first.txt', 'first bytes')
    await put('second.txt', 'second bytes')

    const taken = await cluster.dfs(['mv', 'first.txt', 'second.txt'])
    assert.equal(taken.code, 4, taken.stderr)
    assert.equal(taken.stderr.trim(), 'Error: a file named "second.txt" already exists')

    const missing = await cluster.dfs(['mv', 'nothing.txt', 'third.txt'])
    assert.equal(missing.code, 3, missing.stderr)

    for (const invalid of ['a//b.txt', '../x.txt']) {
      const refused = await cluster.dfs(['mv', 'first.txt', invalid])
      assert.equal(refused.code, 2, refused.stderr)
      assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr)
    }

    // The server refuses an invalid name too, not only the CLI.
    const raw = await cluster.masterJson<{error: string}>(`/files/first.txt/move`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({to: 'a//b.txt'})})
    assert.equal(raw.status, 400)
    assert.equal(raw.body.error, 'DFS_ERR_INVALID_NAME')

    assert.equal((await cluster.dfs(['get', 'first.txt', '-o', '-'])).stdout, 'first bytes')
    assert.equal((await cluster.dfs(['get', 'second.txt', '-o', '-'])).stdout, 'second bytes')
    const names = (await cluster.dfsJson<Array<{name: string}>>(['ls'])).map((file) => file.name)
    assert.ok(names.includes('first.txt') && names.includes('second.txt') && !names.includes('third.txt'), names.join(', '))
  })

  test('every keeper holding a replica rewrites its description to the new name (what master --recover reads)', async () => {
    await put('described.txt', 'described bytes')
    const holders = await cluster.waitForReplicas('described.txt', 2)
    const {fileId} = await cluster.stat('described.txt')
    assert.equal((await cluster.dfs(['mv', 'described.txt', 'notes/described.txt'])).code, 0)
    for (const keeper of holders) {
      await waitFor(`keeper ${keeper}'s description to hold the new name`, async () => (await readJson<{name: string}>(`${cluster.blobPath(keeper, fileId)}.json`)).name === 'notes/described.txt')
    }
  })
})

// A cluster of one keeper: no other replica to copy back from, so only the keeper's own
// registration can make it count as the holder again.
test('a keeper down during a rename is counted as the holder when it registers, and then learns the new name', async () => {
  const cluster = await TestCluster.start({keepers: 1, replicas: 1})
  const work = await tempDir()
  try {
    const path = join(work, 'away.txt')
    await writeFile(path, 'kept bytes')
    assert.equal((await cluster.dfs(['put', path, '--name', 'away.txt'])).code, 0)
    const {fileId} = await cluster.stat('away.txt')
    const victim = cluster.keepers[0]!
    const dataDir = cluster.dataDirOf(victim)
    await victim.stop()
    cluster.keepers.splice(0, 1)

    const moved = await cluster.dfs(['mv', 'away.txt', 'back.txt'])
    assert.equal(moved.code, 0, moved.stderr)
    assert.equal((await readJson<{name: string}>(`${cluster.blobPath(victim.id, fileId)}.json`)).name, 'away.txt', 'the keeper was down: its description still holds the old name')

    const back = await cluster.addKeeper(dataDir)
    await waitFor('the returning keeper to be counted as the holder', async () => (await cluster.stat('back.txt')).replicas.some((replica) => replica.keeper === back.id && replica.alive))
    assert.equal((await cluster.dfs(['get', 'back.txt', '-o', '-'])).stdout, 'kept bytes')
    await waitFor('the returning keeper to rewrite its description', async () => (await readJson<{name: string}>(`${cluster.blobPath(back.id, fileId)}.json`)).name === 'back.txt')
  } finally {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  }
})
