// The fast runner's argv parser against oclif's own (property-based, fast-check): for random argv
// built from each fast command's flags (good and bad values, --flag=value and --flag value, short
// chars, --no-, --, repeats, unknown flags, --help) and random environment values, parseFast either
// defers (undefined: oclif runs the command) or returns exactly what oclif's parser returns.

import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import {Parser} from '@oclif/core'
import fc from 'fast-check'

import {catSpec} from '../src/cli/cat.js'
import {parseFast} from '../src/cli/fast-argv.js'
import type {CommandSpec, FlagSpec} from '../src/cli/flag-spec.js'
import {getSpec} from '../src/cli/get.js'
import {keeperSpec} from '../src/cli/keeper.js'
import {lsSpec} from '../src/cli/ls.js'
import {masterSpec} from '../src/cli/master.js'
import {putSpec} from '../src/cli/put.js'
import {rmSpec} from '../src/cli/rm.js'
import {statSpec} from '../src/cli/stat.js'
import {oclifArgs, oclifFlags} from '../src/lib/base-command.js'

const SPECS: Record<string, CommandSpec> = {ls: lsSpec, stat: statSpec, get: getSpec, put: putSpec, rm: rmSpec, cat: catSpec, master: masterSpec, keeper: keeperSpec}

/** Values a flag of this kind may be given: ones it takes and ones it refuses. */
function values(flag: FlagSpec): string[] {
  const any = ['x', '-', '-x', '--json', 'a b', '0']
  switch (flag.type) {
    case 'boolean': {
      return ['true', 'false']
    }

    case 'string': {
      return [...any, ...(flag.options ?? ['http://127.0.0.1:7700', 'all', '2'])]
    }

    case 'integer': {
      return ['0', '1', '7', '-1', '65535', '65536', '1.5', 'abc', '08']
    }

    case 'custom': {
      return [...any, '2s', '500ms', '0s', '1.5m', '64k', '4MiB', '1k', 'rack-1', 'a/b', '']
    }
  }
}

/** One token or a few, as a user (or a test) types them. */
function tokens(spec: CommandSpec): fc.Arbitrary<string[]> {
  const flags = Object.entries(spec.flags)
  const flagTokens = flags.map(([name, flag]) =>
    fc.constantFrom(...values(flag)).chain((value) =>
      fc.constantFrom(
        [`--${name}`],
        [`--${name}`, value],
        [`--${name}=${value}`],
        ...(flag.char === undefined ? [] : [[`-${flag.char}`], [`-${flag.char}`, value], [`-${flag.char}=${value}`], [`-${flag.char}${value}`]]),
        [`--no-${name}`],
      ),
    ),
  )
  const other = fc.constantFrom(['a.mp4'], ['videos/'], ['b'], ['-'], ['--'], ['--help'], ['-h'], ['help'], ['--bogus'], ['-z'], ['-5'], ['-rf'], ['-qr'], ['--json'], [''])
  // Mostly with a name first where the command takes one (a parse without it only defers), and
  // mostly without one where it takes none (master, keeper: a stray name only defers).
  const first = Object.keys(spec.args).length > 0 ? fc.constantFrom([], ['a.mp4'], ['a.mp4'], ['a.mp4']) : fc.constantFrom(['a.mp4'], [], [], [])
  return fc.tuple(first, fc.array(fc.oneof(...flagTokens, other), {maxLength: 6})).map(([name, parts]) => [...name, ...parts.flat()])
}

/** Environment values for the flags that read one. */
function environment(spec: CommandSpec): fc.Arbitrary<Record<string, string>> {
  const names = Object.values(spec.flags).flatMap((flag) => (flag.type !== 'boolean' && flag.env !== undefined ? [flag.env] : []))
  return fc.record(Object.fromEntries(names.map((name) => [name, fc.constantFrom('', 'from-env', '-x')])), {requiredKeys: []}) as fc.Arbitrary<Record<string, string>>
}

async function oclifParse(spec: CommandSpec, argv: string[]) {
  const {args, argv: rest, flags} = await Parser.parse(argv, {flags: oclifFlags(spec.flags), args: oclifArgs(spec.args), strict: spec.strict})
  return {flags, args, argv: rest}
}

/** Runs work with these variables set in process.env (oclif reads env values there), then puts it back. */
async function withEnv<T>(env: Record<string, string>, work: () => Promise<T>): Promise<T> {
  const before = Object.fromEntries(Object.keys(env).map((name) => [name, process.env[name]]))
  Object.assign(process.env, env)
  try {
    return await work()
  } finally {
    for (const [name, value] of Object.entries(before)) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  }
}

describe('the fast parser defers, or parses as oclif does', () => {
  for (const [id, spec] of Object.entries(SPECS)) {
    test(`dfs ${id}`, async () => {
      let parsedFast = 0
      let runs = 0
      await fc.assert(
        fc.asyncProperty(tokens(spec), environment(spec), async (argv, env) => {
          runs++
          const fast = parseFast(spec, argv, {...env})
          if (fast === undefined) return
          parsedFast++
          const oclif = await withEnv(env, async () => oclifParse(spec, argv))
          assert.deepStrictEqual(fast, oclif, `dfs ${id} ${JSON.stringify(argv)} with ${JSON.stringify(env)}`)
        }),
        {numRuns: 1000, seed: 0x5eed + id.length},
      )
      // Not a parser that defers everything: a fair share of the random invocations runs fast.
      console.log(`dfs ${id}: ${parsedFast} of ${runs} parsed fast`)
      assert.ok(parsedFast >= runs / 20, `only ${parsedFast} of ${runs} invocations of dfs ${id} parsed fast`)
    })
  }
})

describe('the invocations the tests and scripts run hot parse fast, as oclif parses them', () => {
  const cases: Array<[CommandSpec, string[], Record<string, string>]> = [
    [lsSpec, ['--master', 'http://127.0.0.1:7700'], {}],
    [lsSpec, ['videos/', '--json', '--master=http://127.0.0.1:7700'], {DFS_TOKEN: 'a-token'}],
    [statSpec, ['a.mp4', '--master', 'http://127.0.0.1:7700', '--json'], {DFS_CA: '/tmp/ca.pem'}],
    [putSpec, ['a.mp4', 'b.mp4', '--wait', 'all', '--wait-timeout', '10s', '-f', '--master', 'http://127.0.0.1:7700'], {}],
    [putSpec, ['-', '--name', 'out.mp4', '--concurrency=2'], {}],
    [getSpec, ['a.mp4', '-o', '-', '--range-size', '64k', '--sources', '2'], {}],
    [rmSpec, ['-r', 'videos', 'b', '--json'], {}],
    [catSpec, ['a.mp4', '--token', 'x'], {}],
    [rmSpec, ['--', '-a-name-with-a-dash'], {}],
    [masterSpec, ['--port', '0', '--data', '/tmp/m', '--heartbeat-timeout', '1500ms', '--replicas', '2', '--log-level', 'warn'], {}],
    [keeperSpec, ['--master', 'http://127.0.0.1:7700', '--port', '0', '--data', '/tmp/k', '--zone', 'rack-1', '--scrub-rate', '1MiB'], {DFS_SECRET_FILE: '/tmp/key'}],
  ]
  for (const [spec, argv, env] of cases) {
    test(JSON.stringify(argv), async () => {
      const fast = parseFast(spec, argv, env)
      assert.notEqual(fast, undefined)
      assert.deepStrictEqual(fast, await withEnv(env, async () => oclifParse(spec, argv)))
    })
  }
})
