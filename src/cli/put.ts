import {TransferBars} from '../lib/transfer-progress.js'
import type {PutOptions} from '../roles/client/put.js'
import type {CommandIo} from './command-io.js'
import {type CommandSpec, type Parsed, clientSpecs, durationSpec, flag, jsonSpec, quietSpec} from './flag-spec.js'
import {formatBytes} from './human-format.js'

export const putSpec = {
  flags: {
    ...clientSpecs,
    name: flag.string({description: 'store under this name (only with one file)'}),
    recursive: flag.boolean({char: 'r', description: 'store every file under each directory given, as DIRNAME/relative/path', default: false}),
    force: flag.boolean({char: 'f', description: 'replace a file of the same name: readers get the old file or the new one whole, and the old one is deleted once the new one is recorded', default: false}),
    prefix: flag.string({description: "store under this folder instead of DIRNAME (--recursive), or before each file's name", helpValue: 'FOLDER'}),
    concurrency: flag.integer({description: 'uploads under way at once', default: 8, min: 1}),
    wait: flag.string({
      description: 'succeed only once N replicas (or all: the target) are durable and recorded; 1 risks losing a file whose only disk dies before it is copied',
      default: '1',
      helpValue: 'N|all',
    }),
    'wait-timeout': durationSpec('how long --wait may wait', 60_000),
    json: jsonSpec,
    quiet: quietSpec,
  },
  args: {file: {description: 'local files to upload, or - for stdin', required: true}},
  strict: false,
} as const satisfies CommandSpec

export async function runPut(io: CommandIo, {argv: files, flags}: Parsed<typeof putSpec>): Promise<void> {
  if (files.includes('-') && (files.length !== 1 || flags.name === undefined)) io.fail('put - (stdin) takes no other file and needs --name', 2)
  if (flags.name !== undefined && files.length !== 1) io.fail('--name needs exactly one file', 2)
  if (flags.name !== undefined && (flags.recursive || flags.prefix !== undefined)) io.fail('--name stores one file; --recursive and --prefix name many', 2)
  const wait = flags.wait === 'all' ? 'all' : Number(flags.wait)
  if (wait !== 'all' && !(Number.isInteger(wait) && wait >= 1)) io.fail(`--wait takes a number of replicas (1 or more) or "all", not "${flags.wait}"`, 2)
  const master = await io.master(flags)
  const {itemsToPut, putFiles, putStream} = await import('../roles/client/put.js')
  const stdin = files[0] === '-'
  const items = stdin ? [] : flags.name === undefined ? await itemsToPut(files, {recursive: flags.recursive, prefix: flags.prefix}) : [{path: files[0]!, name: flags.name}]
  const bars = await TransferBars.open(stdin ? 1 : items.length, flags.quiet || flags.json)
  const options: PutOptions = {concurrency: flags.concurrency, replace: flags.force, wait, waitTimeoutMs: flags['wait-timeout'], onProgress: bars?.update}
  const outcomes = await (stdin ? putStream(master, process.stdin, flags.name!, options).then((outcome) => [outcome]) : putFiles(master, items, options)).finally(() => bars?.stop())
  io.reportEach(outcomes, {
    json: flags.json,
    subject: (index) => ({path: outcomes[index]!.path}),
    entry: (result) => result,
    line: ({name, size, sha256, keeper, replicas}) => `stored ${name} (${formatBytes(size)}, sha256 ${sha256.slice(0, 12)}…) on ${keeper}${replicas > 1 ? `, ${replicas} replicas durable` : ''}`,
    what: 'uploads',
  })
}
