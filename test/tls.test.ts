import assert from 'node:assert/strict'
import {X509Certificate} from 'node:crypto'
import {chmod, copyFile, readFile, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {ensureLocalCertificates} from '../src/roles/cluster/local-certificates.js'
import {killClustersLeft, clusterUp} from './helpers/cluster-up-process.js'
import {ServerProcess, TestCluster, dfs, randomFile, sha256File, tempDir} from './helpers/cluster.js'
import {runRefusedStart} from './helpers/refused-start.js'

/** The environment of a client that was told no CA: neither --ca nor an inherited DFS_CA. */
const NO_CA = {DFS_CA: undefined}

// One cluster over TLS for the suite; every test stores the files it needs under names of its own.
describe('a cluster over TLS with a private CA', () => {
  let cluster: TestCluster
  let work: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 3, replicas: 3, tls: true})
    work = await tempDir()
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  test('put, replication to 3 keepers, get in ranges from every replica, rm and fsck all run over https', async () => {
    assert.match(cluster.masterUrl, /^https:\/\/127\.0\.0\.1:\d+$/)
    const keepers = await cluster.keeperStatus()
    assert.equal(keepers.length, 3)
    for (const keeper of keepers) assert.match(keeper.url, /^https:\/\/127\.0\.0\.1:\d+$/, `keeper ${keeper.id} advertises an https URL`)

    const source = join(work, 'flow.bin')
    const sha256 = await randomFile(source, 1024 * 1024 + 17)
    const put = await cluster.dfs(['put', source, '--name', 'flow.bin'])
    assert.equal(put.code, 0, put.stderr)

    // Two of the three copies were pulled by a keeper from another keeper's https URL.
    const holders = await cluster.waitForReplicas('flow.bin', 3)
    assert.equal(new Set(holders).size, 3)
    const info = await cluster.stat('flow.bin')
    for (const replica of info.replicas) assert.match(replica.url, /^https:/)

    const copy = join(work, 'flow-copy.bin')
    const [got] = await cluster.dfsJson<[{sha256: string; sources: Array<{keeper: string; url: string; bytes: number; ranges: number}>}]>([
      'get', 'flow.bin', '-o', copy, '--range-size', '64KiB',
    ])
    assert.equal(await sha256File(copy), sha256)
    assert.equal(got.sources.length, 3)
    for (const used of got.sources) {
      assert.match(used.url, /^https:/)
      assert.ok(used.bytes > 0 && used.ranges > 0, `replica ${used.keeper} served ranges: ${JSON.stringify(used)}`)
    }
    assert.equal(got.sources.reduce((sum, used) => sum + used.bytes, 0), 1024 * 1024 + 17)

    const fsck = await cluster.dfsJson<{status: string; summary: {files: number; healthy: number; aliveKeepers: number}}>(['fsck'])
    assert.equal(fsck.status, 'healthy')
    assert.equal(fsck.summary.aliveKeepers, 3)
    assert.ok(fsck.summary.files >= 1 && fsck.summary.healthy === fsck.summary.files, JSON.stringify(fsck))

    const removed = await cluster.dfs(['rm', 'flow.bin'])
    assert.equal(removed.code, 0, removed.stderr)
    const gone = await cluster.dfs(['stat', 'flow.bin'])
    assert.equal(gone.code, 3, gone.stderr)
  })

  test('a client without the CA, or with another one, is refused with one clear line and a non-zero exit', async () => {
    const without = await dfs(['ls', '--master', cluster.masterUrl], {env: {...NO_CA, DFS_TOKEN: cluster.token}})
    assert.equal(without.code, 6)
    assert.equal(without.stdout, '')
    assert.match(without.stderr, /^Error: cannot reach the master at https:\/\/127\.0\.0\.1:\d+: .*not signed by an authority trusted here: give the cluster's CA certificate with --ca or DFS_CA\)\n$/)

    const other = await ensureLocalCertificates(join(work, 'other-ca'))
    const wrong = await dfs(['ls', '--master', cluster.masterUrl, '--ca', other.ca], {env: {DFS_TOKEN: cluster.token}})
    assert.equal(wrong.code, 6)
    assert.match(wrong.stderr, /^Error: cannot reach the master at https:.*--ca or DFS_CA\)\n$/)

    // The same CA from the environment is enough.
    const withEnv = await dfs(['ls', '--master', cluster.masterUrl], {env: {DFS_CA: cluster.tls!.ca, DFS_TOKEN: cluster.token}})
    assert.equal(withEnv.code, 0, withEnv.stderr)
  })

  test('plain http to a TLS port fails cleanly, and the server keeps serving https', async () => {
    const plainUrl = cluster.masterUrl.replace(/^https:/, 'http:')
    const plain = await dfs(['ls', '--master', plainUrl], {env: {...NO_CA, DFS_TOKEN: cluster.token}})
    assert.equal(plain.code, 6)
    assert.match(plain.stderr, /^Error: cannot reach the master at http:\/\/127\.0\.0\.1:\d+: [^\n]+\n$/)
    await assert.rejects(fetch(`${plainUrl}/health`, {signal: AbortSignal.timeout(30_000)}), (error: Error) => error.name !== 'TimeoutError')

    const keeperPlain = `${cluster.keepers[0]!.url.replace(/^https:/, 'http:')}/health`
    await assert.rejects(fetch(keeperPlain, {signal: AbortSignal.timeout(30_000)}), (error: Error) => error.name !== 'TimeoutError')

    assert.ok(!cluster.master.exited && !cluster.keepers[0]!.exited)
    const ls = await cluster.dfs(['ls'])
    assert.equal(ls.code, 0, ls.stderr)
  })
})

describe('TLS files are checked when a server starts', () => {
  let work: string
  let files: Awaited<ReturnType<typeof ensureLocalCertificates>>

  before(async () => {
    work = await tempDir()
    files = await ensureLocalCertificates(join(work, 'tls'))
  })
  after(async () => {
    await rm(work, {recursive: true, force: true})
  })

  /** `dfs master` with these extra flags on a fresh data dir; it must refuse with one line. */
  async function refusedMaster(flags: string[]): Promise<string> {
    const result = await runRefusedStart(['master', '--port', '0', '--data', join(work, 'master'), ...flags])
    assert.equal(result.started, false, 'it must not start')
    assert.equal(result.code, 2, result.stderr)
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
    return result.stderr
  }

  test('a certificate without its key, a key open to others, a key of another certificate and a file that is no certificate are refused', async () => {
    assert.match(await refusedMaster(['--tls-cert', files.cert]), /^Error: give --tls-cert and --tls-key together/)

    const openKey = join(work, 'open-key.pem')
    await copyFile(files.key, openKey)
    await chmod(openKey, 0o644)
    assert.match(await refusedMaster(['--tls-cert', files.cert, '--tls-key', openKey]), /TLS key file \S+open-key\.pem is open to group or others \(mode 0644\): run chmod 600/)

    // The CA's key is a key, but not the certificate's.
    assert.match(await refusedMaster(['--tls-cert', files.cert, '--tls-key', files.caKey]), /the TLS key in \S+ca-key\.pem is not the key of the certificate in \S+cert\.pem/)
    assert.match(await refusedMaster(['--tls-cert', files.key, '--tls-key', files.key]), /TLS certificate file \S+key\.pem holds no PEM certificate/)
    assert.match(await refusedMaster(['--tls-cert', files.cert, '--tls-key', files.key, '--ca', files.key]), /CA file \S+key\.pem holds no PEM certificate/)
  })

  test('https to a plain http port fails with one clear line', async () => {
    const plain = await ServerProcess.start(['master', '--port', '0', '--data', join(work, 'plain-master')])
    try {
      const url = plain.url.replace(/^http:/, 'https:')
      const result = await dfs(['ls', '--master', url, '--ca', files.ca])
      assert.equal(result.code, 6)
      assert.equal(result.stderr, `Error: cannot reach the master at ${url}: it does not answer in TLS (if it serves plain http, use an http:// URL)\n`)
    } finally {
      await plain.stop()
    }
  })

  test('the made certificates: keys only for their owner, a server certificate for loopback signed by the CA', async () => {
    assert.equal((await stat(join(work, 'tls'))).mode & 0o777, 0o700)
    assert.equal((await stat(files.key)).mode & 0o777, 0o600)
    assert.equal((await stat(files.caKey)).mode & 0o777, 0o600)
    const ca = new X509Certificate(await readFile(files.ca))
    const server = new X509Certificate(await readFile(files.cert))
    assert.ok(ca.ca && !server.ca)
    assert.ok(server.verify(ca.publicKey) && server.checkIssued(ca))
    assert.ok(server.checkIP('127.0.0.1') && server.checkHost('localhost'))
  })
})

test('cluster up --tls serves a put and a get over https, and keeps its CA across restarts', async () => {
  const dir = await tempDir('dfs-cluster-up-tls-')
  const work = await tempDir()
  try {
    const source = join(work, 'up.bin')
    const sha256 = await randomFile(source, 300_000)
    const first = await clusterUp(dir, 2, ['--tls'])
    const ca = join(dir, 'tls', 'ca.pem')
    let caPem: string
    try {
      assert.match(first.masterUrl, /^https:/)
      assert.equal(first.keepers.length, 2)
      for (const keeper of first.keepers) assert.match(keeper.url, /^https:/)
      assert.ok(first.output().includes(`export DFS_CA=${ca}`), first.output())
      caPem = await readFile(ca, 'utf8')

      const put = await dfs(['put', source, '--master', first.masterUrl, '--ca', ca])
      assert.equal(put.code, 0, put.stderr)
    } finally {
      first.child.kill('SIGTERM')
    }

    assert.deepEqual(await first.exit, {code: 0, signal: null}, first.output())
    const second = await clusterUp(dir, 2, ['--tls'])
    try {
      assert.equal(await readFile(ca, 'utf8'), caPem, 'the CA is kept, so clients keep trusting the cluster')
      const copy = join(work, 'up-copy.bin')
      const got = await dfs(['get', 'up.bin', '-o', copy, '--master', second.masterUrl], {env: {DFS_CA: ca}})
      assert.equal(got.code, 0, got.stderr)
      assert.equal(await sha256File(copy), sha256)
    } finally {
      second.child.kill('SIGTERM')
    }

    assert.deepEqual(await second.exit, {code: 0, signal: null}, second.output())
  } finally {
    await killClustersLeft()
    await rm(dir, {recursive: true, force: true})
    await rm(work, {recursive: true, force: true})
  }
})
