import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {mkdir, open, readFile, readdir, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {BIN, FIXTURES, SAMPLES, TestCluster, randomFile, sha256File, tempDir} from './helpers/cluster.js'

/** Runs `dfs ARGS` with stdin read from the file `stdin` and stdout written to the file `stdout`, byte for byte. */
async function dfsWithFiles(cluster: TestCluster, args: string[], files: {stdin?: string; stdout: string; tmp: string}): Promise<{code: number | null; stderr: string}> {
  const input = files.stdin ? await open(files.stdin, 'r') : undefined
  const output = await open(files.stdout, 'w')
  try {
    const child = spawn(process.execPath, [BIN, ...args, ...cluster.clientFlags], {
      stdio: [input?.fd ?? 'ignore', output.fd, 'pipe'],
      env: {...process.env, TMPDIR: files.tmp},
    })
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const [code] = (await once(child, 'close')) as [number | null]
    return {code, stderr}
  } finally {
    await input?.close()
    await output.close()
  }
}

describe('put - stores stdin, cat writes a file to stdout', () => {
  let cluster: TestCluster
  let work: string
  let tmp: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 2, replicas: 2})
    work = await tempDir()
    tmp = join(work, 'tmp')
    await mkdir(tmp)
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  test('a stream of unknown size is stored whole and verified, and no spool file is left', async () => {
    // Larger than put's in-memory size, so that spooling and the upload both stream.
    const source = join(work, 'stream.bin')
    const sha256 = await randomFile(source, 9 * 1024 * 1024 + 17)
    const put = await dfsWithFiles(cluster, ['put', '-', '--name', 'from-stdin.bin', '--json'], {stdin: source, stdout: join(work, 'put.json'), tmp})
    assert.equal(put.code, 0, put.stderr)
    const [entry] = JSON.parse(await readFile(join(work, 'put.json'), 'utf8')) as Array<{path: string; sha256: string; size: number}>
    assert.equal(entry!.path, '-')
    assert.equal(entry!.sha256, sha256)
    assert.equal((await cluster.stat('from-stdin.bin')).sha256, sha256)
    assert.deepEqual(await readdir(tmp), [])

    const copy = join(work, 'cat.bin')
    const cat = await dfsWithFiles(cluster, ['cat', 'from-stdin.bin'], {stdout: copy, tmp})
    assert.equal(cat.code, 0, cat.stderr)
    assert.equal(cat.stderr, '')
    assert.equal(await sha256File(copy), sha256)
    assert.deepEqual(await readdir(tmp), [])
  })

  test('cat of a sample writes exactly its bytes; cat of a missing name writes nothing and says why', async () => {
    assert.equal((await cluster.dfs(['put', join(FIXTURES, 'sample_3.mp4')])).code, 0)
    const copy = join(work, 'sample.mp4')
    const cat = await dfsWithFiles(cluster, ['cat', 'sample_3.mp4'], {stdout: copy, tmp})
    assert.equal(cat.code, 0, cat.stderr)
    assert.equal(await sha256File(copy), SAMPLES['sample_3.mp4'].sha256)

    const missing = join(work, 'missing.out')
    const failed = await dfsWithFiles(cluster, ['cat', 'missing.mp4'], {stdout: missing, tmp})
    assert.equal(failed.code, 3)
    assert.equal(failed.stderr, 'Error: no file named "missing.mp4"\n')
    assert.equal((await stat(missing)).size, 0)
  })

  test('put - without --name, or with other files, is refused before stdin is read', async () => {
    for (const args of [['put', '-'], ['put', '-', join(FIXTURES, 'sample_1.mp4'), '--name', 'x.mp4']]) {
      const result = await cluster.dfs(args)
      assert.equal(result.code, 2)
      assert.equal(result.stderr, 'Error: put - (stdin) takes no other file and needs --name\n')
    }
  })
})
