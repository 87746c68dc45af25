import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {rm} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {promisify} from 'node:util'

import {BIN, TestCluster, randomFile, sha256File, tempDir} from './helpers/cluster.js'

const MiB = 1024 * 1024

/**
 * Runs `dfs ARGS` under a pseudo-terminal (util-linux `script`), as a person at a terminal runs
 * it: stdout and stderr are both the terminal; what it drew comes back as one string.
 */
async function dfsOnTerminal(cluster: TestCluster, args: string[], cwd: string): Promise<{code: number; screen: string}> {
  const command = [process.execPath, BIN, ...args, ...cluster.clientFlags].map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(' ')
  try {
    const {stdout} = await promisify(execFile)('script', ['-qfec', command, '/dev/null'], {cwd, env: {...process.env, DFS_TOKEN: cluster.token, COLUMNS: '120'}, maxBuffer: 64 * MiB})
    return {code: 0, screen: stdout}
  } catch (error) {
    const failed = error as {code?: number; stdout?: string}
    return {code: failed.code ?? -1, screen: failed.stdout ?? ''}
  }
}

// Progress bars show what a transfer is doing: percentages, bytes, a rate and an ETA.
const BAR = /\d+% .*(B|KiB|MiB) of .*MiB .*\/s .*ETA/

describe('progress bars on a terminal, and none anywhere else', () => {
  let cluster: TestCluster
  let work: string
  const files: Array<{path: string; sha256: string}> = []

  before(async () => {
    cluster = await TestCluster.start({keepers: 2, replicas: 1})
    work = await tempDir()
    // Over put's in-memory size (8 MiB), so that it hashes as it sends.
    for (const name of ['first.bin', 'second.bin']) files.push({path: join(work, name), sha256: await randomFile(join(work, name), 12 * MiB)})
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  test('put and get of several files draw each phase of each file and a total', async () => {
    const put = await dfsOnTerminal(cluster, ['put', files[0]!.path, files[1]!.path], work)
    assert.equal(put.code, 0, put.screen)
    for (const name of ['first.bin', 'second.bin']) {
      // Hashed while sent (one pass): no phase of its own.
      assert.doesNotMatch(put.screen, new RegExp(`hashing ${name}`))
      assert.match(put.screen, new RegExp(`put ${name}`))
      assert.match(put.screen, new RegExp(`stored ${name}`))
    }

    assert.match(put.screen, /all 2 files .*100% 24\.0 MiB of 24\.0 MiB/)
    assert.match(put.screen, BAR)

    const out = join(work, 'got')
    const get = await dfsOnTerminal(cluster, ['get', 'first.bin', 'second.bin', '-o', `${out}/`, '--range-size', '1MiB'], work)
    assert.equal(get.code, 0, get.screen)
    assert.match(get.screen, /get first\.bin/)
    assert.match(get.screen, /get second\.bin/)
    assert.match(get.screen, /all 2 files .*100% 24\.0 MiB of 24\.0 MiB/)
    assert.equal(await sha256File(join(out, 'first.bin')), files[0]!.sha256)
    await rm(out, {recursive: true})
  })

  test('a get of many small files, read in batches, draws each file and a total', async () => {
    const names = ['tiny-0.bin', 'tiny-1.bin', 'tiny-2.bin']
    for (const name of names) await randomFile(join(work, name), 10 * 1024)
    const put = await cluster.dfs(['put', ...names.map((name) => join(work, name))])
    assert.equal(put.code, 0, put.stderr)

    const out = join(work, 'tiny-out')
    const get = await dfsOnTerminal(cluster, ['get', ...names, '-o', `${out}/`], work)
    assert.equal(get.code, 0, get.screen)
    for (const name of names) assert.match(get.screen, new RegExp(`get ${name.replace('.', '\\.')}`))
    assert.match(get.screen, /all 3 files .*100% 30\.0 KiB of 30\.0 KiB/)
    await rm(out, {recursive: true})
  })

  test('--quiet and --json draw no bars on a terminal', async () => {
    const quiet = await dfsOnTerminal(cluster, ['get', 'first.bin', '-o', join(work, 'quiet.bin'), '--quiet'], work)
    assert.equal(quiet.code, 0, quiet.screen)
    assert.doesNotMatch(quiet.screen, /%|ETA/)
    assert.match(quiet.screen, /^got first\.bin \(12\.0 MiB\) into .*quiet\.bin from \d replicas?\r?\n$/)

    const json = await dfsOnTerminal(cluster, ['get', 'first.bin', '-o', join(work, 'json.bin'), '--json'], work)
    assert.equal(json.code, 0, json.screen)
    assert.equal((JSON.parse(json.screen) as Array<{sha256: string}>)[0]!.sha256, files[0]!.sha256)
    await rm(join(work, 'quiet.bin'))
    await rm(join(work, 'json.bin'))
  })

  test('without a terminal only the final lines are printed', async () => {
    const got = await cluster.dfs(['get', 'first.bin', '-o', join(work, 'piped.bin')])
    assert.equal(got.code, 0, got.stderr)
    assert.equal(got.stderr, '')
    assert.match(got.stdout, /^got first\.bin \(12\.0 MiB\) into .*piped\.bin from \d replicas?\n$/)
    await rm(join(work, 'piped.bin'))

    const put = await cluster.dfs(['put', files[0]!.path, '--name', 'piped.bin'])
    assert.equal(put.code, 0, put.stderr)
    assert.equal(put.stderr, '')
    assert.match(put.stdout, /^stored piped\.bin \(12\.0 MiB, sha256 \w+…\) on \S+\n$/)
  })

  test('ls on a terminal cuts a long name in the middle; --json and a pipe get it whole', async () => {
    const name = `long/${'x'.repeat(80)}-the-end.bin`
    const put = await cluster.dfs(['put', files[0]!.path, '--name', name])
    assert.equal(put.code, 0, put.stderr)

    const shown = await dfsOnTerminal(cluster, ['ls', 'long/'], work)
    assert.equal(shown.code, 0, shown.screen)
    const row = shown.screen.split(/\r?\n/).find((line) => line.startsWith('long/'))
    assert.ok(row, shown.screen)
    assert.match(row, /^long\/x+…x*-the-end\.bin +12\.0 MiB /, 'cut in the middle, its end kept, the size column in view')
    assert.ok(!row.includes(name), row)

    const json = await dfsOnTerminal(cluster, ['ls', 'long/', '--json'], work)
    assert.deepEqual((JSON.parse(json.screen) as Array<{name: string}>).map((file) => file.name), [name])
    const piped = await cluster.dfs(['ls', 'long/'])
    assert.ok(piped.stdout.includes(name), piped.stdout)
  })
})
