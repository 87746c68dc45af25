import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {mkdir, readdir, rm} from 'node:fs/promises'
import {basename, join} from 'node:path'
import {after, test} from 'node:test'

import {isRunning, readClusterState} from '../src/roles/cluster/local-cluster.js'
import {BIN, dfs, dfsJson, randomFile, sha256File, tempDir, waitFor} from './helpers/cluster.js'
import {clusterToken, clusterUp, killClustersLeft} from './helpers/cluster-up-process.js'
import {holdUpload} from './helpers/held-upload.js'
import {assertPutOutcomes} from './helpers/put-outcomes.js'

const MiB = 1024 * 1024
const SIZE = 9 * MiB

const dirs: string[] = []
after(async () => {
  await killClustersLeft()
  for (const dir of dirs) await rm(dir, {recursive: true, force: true})
})

test('Ctrl-C of cluster up with uploads in flight: they finish or fail cleanly, the cluster stops, and the same dir brings back every stored file intact', async () => {
  const dir = await tempDir('dfs-cluster-up-')
  const work = await tempDir()
  dirs.push(dir, work)
  const first = await clusterUp(dir, 3)

  const sources = new Map<string, string>()
  const paths: string[] = []
  for (let index = 1; index <= 4; index++) {
    const path = join(work, `in-flight-${index}.bin`)
    sources.set(basename(path), await randomFile(path, SIZE))
    paths.push(path)
  }

  // One upload held half-way is surely in flight when the stop begins; the CLI's are wherever they are.
  const held = await holdUpload(first.masterUrl, await clusterToken(dir), 'held.bin', SIZE)
  sources.set('held.bin', held.sha256)
  const put = spawn(process.execPath, [BIN, 'put', ...paths, '--json', '--master', first.masterUrl], {stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  put.stdout.on('data', (chunk: Buffer) => (stdout += chunk))
  put.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
  const putDone = once(put, 'close') as Promise<[number | null]>
  // Each upload under way has two temp files (the bytes and their description): the held one's, and more.
  await waitFor('uploads of the CLI in progress on the keepers', async () => (await partsOn(dir)) >= 4)

  first.child.kill('SIGINT')
  // The held upload's keeper is stopping (it refuses new requests); the upload under way may finish.
  await waitFor('the held upload\'s keeper to refuse new requests', async () => {
    try {
      return (await fetch(`${held.keeper.url}/health`)).status === 503
    } catch (error) {
      return (error as {cause?: {code?: string}}).cause?.code === 'ECONNREFUSED'
    }
  })
  held.release()
  const heldAnswer = await held.response
  assert.ok('status' in heldAnswer && heldAnswer.status === 201, `the upload in flight was finished: ${JSON.stringify(heldAnswer)}`)

  assert.deepEqual(await first.exit, {code: 0, signal: null}, first.output())
  assert.match(first.output(), /cluster stopped/)
  assert.deepEqual(first.childPids.filter((pid) => isRunning(pid)), [], 'no master or keeper outlives cluster up')
  assert.equal(await readClusterState(dir), undefined)

  const [code] = await putDone
  const outcomes = assertPutOutcomes({code, stdout, stderr}, 4, sources)
  const confirmed = ['held.bin', ...outcomes.flatMap((outcome) => ('sha256' in outcome ? [outcome.name] : []))]

  const second = await clusterUp(dir, 3)
  const listed = await dfsJson<Array<{name: string; size: number; sha256: string}>>(['ls', '--master', second.masterUrl])
  for (const name of confirmed) assert.ok(listed.some((file) => file.name === name), `confirmed ${name} is back`)
  // A failed put may have been recorded all the same (its answer was what got lost): it is whole.
  for (const file of listed) assert.equal(file.sha256, sources.get(file.name), `${file.name} is one of the uploads, whole`)
  const out = join(work, 'out') + '/'
  await mkdir(out)
  const names = listed.map((file) => file.name)
  const got = await dfs(['get', ...names, '-o', out, '--master', second.masterUrl])
  assert.equal(got.code, 0, got.stderr)
  for (const file of listed) assert.equal(await sha256File(join(out, file.name)), file.sha256, file.name)

  second.child.kill('SIGINT')
  assert.deepEqual(await second.exit, {code: 0, signal: null}, second.output())
})

/** Temp files of uploads under way on the keepers of a `cluster up` directory. */
async function partsOn(dir: string): Promise<number> {
  let count = 0
  for (const entry of await readdir(dir)) if (entry.startsWith('keeper-')) count += (await readdir(join(dir, entry, 'tmp')).catch(() => [])).length
  return count
}
