// `npm run chaos`: a seeded random workload of puts, gets and rms through the real CLI against a
// real master and keepers, while keepers (and once in a while the master) are killed and
// restarted. At the end every process comes back, the cluster settles, and the invariant is
// checked: every confirmed file reads back byte-exact, none is missing, every removed file is gone.
//
//   node dist/test/chaos/run.js [--seed N] [--duration S] [--keepers N] [--short] [--json]
//
// The seed is printed at the start and at the end; `--seed N` replays the same decisions (which
// files, which operations, which keeper dies when), though not the exact timing of processes.
// Exits 0 when the invariant holds, 1 when it does not (with the evidence and a directory of logs).

import {randomInt} from 'node:crypto'
import {mkdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {TestCluster, tempDir} from '../helpers/cluster.js'
import {ChaosMonkey, describeFault, planFaults} from './chaos.js'
import {verifyInvariant, type VerifyFigures} from './invariant.js'
import {Journal, formatBytes, type Finding} from './journal.js'
import {Model} from './model.js'
import {Rng} from './prng.js'
import {killRunningCommands} from './proc.js'
import {Worker} from './workload.js'

const USAGE = `usage: node dist/test/chaos/run.js [options]
  --seed N          seed of every random decision (default: random; printed so a run can be replayed)
  --duration S      seconds of workload under faults (default 60; 20 with --short)
  --keepers N       keepers in the cluster (default 5)
  --replicas N      replicas per file (default 3)
  --workers N       concurrent workload workers (default 3; 2 with --short)
  --master-kills N  times the master is killed and restarted (default 1 per minute, at least 1)
  --short           a CI-sized run: 20 s, fewer and smaller files
  --json            print the final report as JSON on stdout (progress goes to stderr)
  --keep-logs       keep the servers' logs even when the run passes`

interface Config {
  seed: number
  durationMs: number
  keepers: number
  replicas: number
  workers: number
  masterKills: number
  short: boolean
  json: boolean
  keepLogs: boolean
  maxBytes: number
  killGapMs: [number, number]
  downMs: [number, number]
  settleDeadlineMs: number
  commandTimeoutMs: number
}

function parseConfig(): Config {
  const {values} = parseArgs({
    options: {
      seed: {type: 'string'},
      duration: {type: 'string'},
      keepers: {type: 'string'},
      replicas: {type: 'string'},
      workers: {type: 'string'},
      'master-kills': {type: 'string'},
      short: {type: 'boolean', default: false},
      json: {type: 'boolean', default: false},
      'keep-logs': {type: 'boolean', default: false},
      help: {type: 'boolean', short: 'h', default: false},
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(USAGE + '\n')
    process.exit(0)
  }

  const integer = (name: string, value: string | undefined, fallback: number, min: number): number => {
    if (value === undefined) return fallback
    const parsed = Number(value)
    if (!Number.isInteger(parsed) || parsed < min) {
      process.stderr.write(`--${name} takes an integer of at least ${min}, not "${value}"\n${USAGE}\n`)
      process.exit(2)
    }

    return parsed
  }

  const short = values.short ?? false
  const seed = integer('seed', values.seed, randomInt(1, 2 ** 31 - 1), 0)
  const duration = integer('duration', values.duration, short ? 20 : 60, 1)
  const keepers = integer('keepers', values.keepers, 5, 2)
  const replicas = integer('replicas', values.replicas, 3, 1)
  return {
    seed,
    durationMs: duration * 1000,
    keepers,
    replicas,
    workers: integer('workers', values.workers, short ? 2 : 3, 1),
    masterKills: integer('master-kills', values['master-kills'], Math.max(1, Math.floor(duration / 60)), 0),
    short,
    json: values.json ?? false,
    keepLogs: values['keep-logs'] ?? false,
    maxBytes: short ? 2 * 1024 * 1024 : 6 * 1024 * 1024,
    killGapMs: short ? [1000, 3000] : [1000, 4000],
    downMs: short ? [500, 5000] : [500, 8000],
    settleDeadlineMs: short ? 45_000 : 120_000,
    commandTimeoutMs: 90_000,
  }
}

const config = parseConfig()
// Never fewer keepers running than this, so that most files keep a replica on a running keeper.
const MIN_ALIVE = 2
// With --json, stdout carries only the report.
const say = (line: string) => (config.json ? process.stderr : process.stdout).write(line + '\n')
const journal = new Journal(say)
const replay = replayCommand()

/** The command that runs this again with the same seed and options. */
function replayCommand(): string {
  const rest: string[] = []
  const argv = process.argv.slice(2)
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!
    if (arg === '--seed') index++
    else if (!arg.startsWith('--seed=') && arg !== '--json') rest.push(arg)
  }

  return ['npm run chaos --', '--seed', String(config.seed), ...rest].join(' ')
}

let cluster: TestCluster | undefined
let monkey: ChaosMonkey | undefined
let model: Model | undefined
let workDir: string | undefined
let cleaning: Promise<void> | undefined

async function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    killRunningCommands()
    await cluster?.stop().catch(() => {})
    if (workDir) await rm(workDir, {recursive: true, force: true}).catch(() => {})
  })()
  return cleaning
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`\ninterrupted by ${signal}: stopping every process (seed ${config.seed})`)
    journal.closed = true
    void cleanUp().finally(() => process.exit(130))
  })
}

async function main(): Promise<number> {
  say(`dfs chaos: seed ${config.seed}  (replay: ${replay})`)
  say(
    `${config.durationMs / 1000} s of workload, ${config.workers} workers, files up to ${formatBytes(config.maxBytes)}, ` +
      `${config.keepers} keepers, ${config.replicas} replicas, ${config.masterKills} master kill(s)`,
  )

  const rng = new Rng(config.seed)
  const plan = planFaults(rng.fork('faults'), {
    durationMs: config.durationMs,
    keepers: config.keepers,
    minAlive: MIN_ALIVE,
    killGapMs: config.killGapMs,
    downMs: config.downMs,
    masterKills: config.masterKills,
    sigtermChance: 0.15,
  })
  for (const event of plan) journal.event('plan', describeFault(event))

  const work = await tempDir('dfs-chaos-work-')
  workDir = work
  const started = Date.now()
  cluster = await TestCluster.start({
    keepers: config.keepers,
    replicas: config.replicas,
    // Scrub often, so that the scrubber runs against files that come and go under it.
    keeperArgs: ['--scrub-interval', '3s', '--scrub-rate', '16MiB'],
  })
  const theCluster = cluster
  journal.event('chaos', `cluster up in ${Date.now() - started} ms: master ${cluster.masterUrl}, keepers ${cluster.keepers.map((keeper) => keeper.id).join(' ')}`)
  const theModel = new Model()
  const theMonkey = new ChaosMonkey(cluster, journal)
  model = theModel
  monkey = theMonkey

  // The workload under faults.
  const workloadStart = Date.now()
  const deadline = workloadStart + config.durationMs
  const stop = () => Date.now() >= deadline || cleaning !== undefined
  const workers = Array.from(
    {length: config.workers},
    (_, index) =>
      new Worker(index + 1, rng.fork(`worker-${index + 1}`), theModel, journal, {
        masterUrl: () => theCluster.masterUrl,
        seed: config.seed,
        workDir: work,
        maxBytes: config.maxBytes,
        commandTimeoutMs: config.commandTimeoutMs,
        waitTimeout: '8s',
      }),
  )
  const progress = setInterval(() => {
    const {ops, chaos} = journal
    say(
      `  ${Math.round((Date.now() - workloadStart) / 1000)} s: put ${ops.put.ok}/${ops.put.ok + ops.put.failed}, get ${ops.get.ok}/${ops.get.ok + ops.get.failed}, ` +
        `rm ${ops.rm.ok}/${ops.rm.ok + ops.rm.failed} ok; keeper kills ${chaos.keeperKills + chaos.keeperTerms}, master kills ${chaos.masterKills}; ` +
        `${theMonkey.aliveKeepers} keepers running`,
    )
  }, 5000)
  try {
    await Promise.all([theMonkey.run(plan, workloadStart, stop, MIN_ALIVE), ...workers.map((worker) => worker.run(stop))])
  } finally {
    clearInterval(progress)
  }

  const workloadMs = Date.now() - workloadStart
  journal.event('chaos', `workload over after ${workloadMs} ms; bringing every process back`, true)

  // Everything back, then the invariant.
  await theMonkey.restartAll()
  const figures = await verifyInvariant(cluster, theModel, journal, {
    workDir: work,
    settleDeadlineMs: config.settleDeadlineMs,
    commandTimeoutMs: config.commandTimeoutMs,
    log: say,
  })

  const failed = journal.violations.length > 0
  const report = buildReport(figures, workloadMs, Date.now() - started, theMonkey, theModel)
  let logDir: string | undefined
  if (failed || config.keepLogs) logDir = await saveLogs(theMonkey, theModel, report)
  printReport(report, figures, logDir, theMonkey)
  if (config.json) process.stdout.write(JSON.stringify({...report, logDir}, null, 2) + '\n')
  return failed ? 1 : 0
}

function buildReport(figures: VerifyFigures, workloadMs: number, totalMs: number, monkey: ChaosMonkey, model: Model) {
  const {ops, chaos} = journal
  const operations = ops.put.ok + ops.put.failed + ops.get.ok + ops.get.failed + ops.rm.ok + ops.rm.failed
  return {
    seed: config.seed,
    replay,
    passed: journal.violations.length === 0,
    durationS: config.durationMs / 1000,
    workloadS: Math.round(workloadMs / 100) / 10,
    totalS: Math.round(totalMs / 100) / 10,
    cluster: {keepers: config.keepers, replicas: config.replicas, workers: config.workers},
    operations: {total: operations, put: ops.put, get: ops.get, rm: ops.rm, putWaitTimeouts: journal.putWaitTimeouts, bytesPut: journal.bytesPut, bytesGot: journal.bytesGot},
    faults: {...chaos, keepersRunning: monkey.aliveKeepers},
    files: {
      confirmed: figures.confirmed,
      removed: figures.removed,
      unknown: figures.unknown,
      unknownPresent: figures.unknownPresent,
      verified: figures.filesVerified,
      bytesVerified: figures.bytesVerified,
      replicasVerified: figures.replicasVerified,
      replicaBytesVerified: figures.replicaBytesVerified,
      phantomReplicas: figures.phantomReplicas,
      removedGone: figures.removedGone,
      lost: figures.filesLost,
      bytesLost: figures.bytesLost,
      orphanBlobs: figures.orphanBlobs,
      names: model.files.size,
    },
    settle: {settled: figures.settled, ms: figures.settleMs, fsck: figures.fsck},
    failures: Object.fromEntries(Object.entries(journal.failures).map(([kind, map]) => [kind, Object.fromEntries([...map].sort((a, b) => b[1] - a[1]))])),
    violations: journal.violations,
    warnings: journal.warnings,
  }
}

type Report = ReturnType<typeof buildReport>

function printReport(report: Report, figures: VerifyFigures, logDir: string | undefined, monkey: ChaosMonkey): void {
  const {operations: ops, faults, files} = report
  say('')
  say(`operations: ${ops.total} — put ${ops.put.ok} ok / ${ops.put.failed} failed (${ops.putWaitTimeouts} stored but --wait timed out), get ${ops.get.ok} ok / ${ops.get.failed} failed, rm ${ops.rm.ok} ok / ${ops.rm.failed} failed`)
  say(`            ${formatBytes(ops.bytesPut)} put, ${formatBytes(ops.bytesGot)} read back during the run`)
  say(`faults:     keeper kills ${faults.keeperKills} (SIGKILL) + ${faults.keeperTerms} (SIGTERM), keeper restarts ${faults.keeperRestarts}, master kills ${faults.masterKills}`)
  say(`settle:     ${figures.settled ? 'settled' : 'NOT settled'} in ${(figures.settleMs / 1000).toFixed(1)} s; fsck ${JSON.stringify(figures.fsck)}`)
  say(`files:      ${files.confirmed} confirmed, ${files.removed} removed (${files.removedGone} gone), ${files.unknown} unknown after a failed put/rm (${files.unknownPresent} present)`)
  say(`verified:   ${files.verified} files byte-exact (${formatBytes(files.bytesVerified)}) via dfs get; ${files.replicasVerified} replicas byte-exact on their keepers (${formatBytes(files.replicaBytesVerified)})`)
  say(`lost:       ${files.lost} files, bytes lost = ${files.bytesLost}; replicas the master counts but its keeper lacks: ${files.phantomReplicas}`)
  for (const [kind, messages] of Object.entries(report.failures)) {
    const top = Object.entries(messages).slice(0, 6)
    if (top.length === 0) continue
    say(`${kind} failures:`)
    for (const [message, count] of top) say(`  ${String(count).padStart(4)} × ${message}`)
  }

  if (report.warnings.length > 0) {
    const byKind = new Map<string, number>()
    for (const warning of report.warnings) byKind.set(warning.kind, (byKind.get(warning.kind) ?? 0) + 1)
    say(`warnings:   ${[...byKind].map(([kind, count]) => `${kind} ×${count}`).join(', ')}`)
    for (const warning of report.warnings.filter((finding) => finding.kind !== 'restart-failed').slice(0, 5)) say(`  - ${warning.kind}: ${warning.message}`)
  }

  if (report.violations.length > 0) {
    say('')
    const byKind = new Map<string, number>()
    for (const finding of report.violations) byKind.set(finding.kind, (byKind.get(finding.kind) ?? 0) + 1)
    say(`INVARIANT VIOLATED: ${report.violations.length} finding(s): ${[...byKind].map(([kind, count]) => `${kind} ×${count}`).join(', ')}`)
    for (const finding of report.violations.slice(0, 10)) printEvidence(finding, monkey)
    if (report.violations.length > 10) say(`… and ${report.violations.length - 10} more (see the logs)`)
  }

  say('')
  if (logDir) say(`logs of every process, the timeline and the report: ${logDir}`)
  say(`${report.passed ? 'PASSED' : 'FAILED'}: seed ${config.seed}, ${ops.total} operations, ${faults.keeperKills + faults.keeperTerms} keeper kills, ${faults.masterKills} master kills, ${files.verified} files verified, bytes lost = ${files.bytesLost}${files.phantomReplicas ? `, ${files.phantomReplicas} phantom replicas` : ''}, ${report.totalS} s`)
  say(`replay: ${replay}`)
}

/** A finding with the timeline of its files and the servers' log lines that mention them. */
function printEvidence(finding: Finding, monkey: ChaosMonkey): void {
  say(`\n* ${finding.kind}: ${finding.message}`)
  if (finding.details) for (const line of finding.details.split('\n').slice(0, 12)) say(`    ${line}`)
  const needles = [...(finding.names ?? []), ...(finding.ids ?? [])].filter((needle) => needle.length > 0)
  if (needles.length === 0) return
  const timeline = journal.timelineFor(needles.map((needle) => (finding.names?.includes(needle) ? `"${needle}"` : needle)))
  if (timeline.length > 0) {
    say('  timeline:')
    for (const line of timeline.slice(-20)) say(`    ${line}`)
  }

  const logs = serverLines(monkey, needles)
  if (logs.length > 0) {
    say('  server logs:')
    for (const line of logs.slice(-30)) say(`    ${line}`)
  }
}

/** Lines of every process's log that mention one of `needles`, in time order, readable. */
function serverLines(monkey: ChaosMonkey, needles: string[]): string[] {
  const lines: Array<{time: number; text: string}> = []
  for (const {label, process} of monkey.processes) {
    for (const raw of process.logs) {
      if (!needles.some((needle) => raw.includes(needle) || raw.includes(JSON.stringify(needle).slice(1, -1)))) continue
      const {time, text} = readable(raw)
      lines.push({time, text: `${label.padEnd(18)} ${text}`})
    }
  }

  return lines.sort((a, b) => a.time - b.time).map((line) => line.text)
}

function readable(raw: string): {time: number; text: string} {
  try {
    const entry = JSON.parse(raw) as {time?: number; level?: number; msg?: string; code?: string; err?: {message?: string}}
    const time = entry.time ?? 0
    const level = ({10: 'trace', 20: 'debug', 30: 'info', 40: 'WARN', 50: 'ERROR', 60: 'FATAL'} as Record<number, string>)[entry.level ?? 30] ?? String(entry.level)
    const extra = [entry.code, entry.err?.message].filter(Boolean).join(' ')
    return {time, text: `${new Date(time).toISOString().slice(11, 23)} ${level.padEnd(5)} ${entry.msg ?? raw}${extra ? ` [${extra}]` : ''}`}
  } catch {
    return {time: 0, text: raw}
  }
}

async function saveLogs(monkey: ChaosMonkey, model: Model | undefined, report: unknown): Promise<string> {
  const dir = join(tmpdir(), `dfs-chaos-${config.seed}-${new Date().toISOString().replace(/[:.]/g, '-')}`)
  await mkdir(dir, {recursive: true})
  await writeFile(join(dir, 'timeline.log'), journal.timeline.join('\n') + '\n')
  await writeFile(join(dir, 'report.json'), JSON.stringify(report, null, 2) + '\n')
  if (model) await writeFile(join(dir, 'model.json'), JSON.stringify([...model.files.values()], null, 2) + '\n')
  for (const {label, process} of monkey.processes) {
    const file = label.replace(/[^A-Za-z0-9_-]+/g, '-') + '.log'
    await writeFile(join(dir, file), process.logs.map((raw) => readable(raw).text).join('\n') + '\n')
  }

  return dir
}

let exitCode = 1
try {
  exitCode = await main()
} catch (error) {
  say(`\nthe chaos run itself failed: ${(error as Error).stack ?? String(error)}`)
  if (monkey) {
    const logDir = await saveLogs(monkey, model, {seed: config.seed, replay, error: String(error), violations: journal.violations, warnings: journal.warnings}).catch(() => undefined)
    if (logDir) say(`logs of every process and the timeline: ${logDir}`)
  }

  say(`seed ${config.seed} (replay: ${replay})`)
  exitCode = 1
} finally {
  await cleanUp()
}

process.exit(exitCode)
