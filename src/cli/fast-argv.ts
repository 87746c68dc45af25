import type {CommandSpec, FlagSpec, Parsed} from './flag-spec.js'

/**
 * Parses a command's argv without @oclif/core, only where the answer is sure to be oclif's own:
 * known flags given once (`--name value`, `--name=value`, `-c value`), values their flag accepts,
 * the arguments the command takes. Anything else (an unknown or repeated flag, a bad value, a
 * missing argument, --help, combined short flags, a value that looks like a flag) gives
 * undefined, and the same argv goes to oclif, which prints the canonical help or error: the
 * fast path never decides an error.
 */
export function parseFast<S extends CommandSpec>(spec: S, argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Parsed<S> | undefined {
  const given = new Map<string, string | true>()
  const tokens: string[] = []
  const byChar = new Map(Object.entries(spec.flags).flatMap(([name, flag]) => (flag.char === undefined ? [] : [[flag.char, name] as const])))
  let parsingFlags = true
  for (let index = 0; index < argv.length; index++) {
    const token = argv[index]!
    if (!parsingFlags || token === '-' || !token.startsWith('-')) {
      tokens.push(token)
      continue
    }

    if (token === '--') {
      parsingFlags = false
      continue
    }

    const equals = token.startsWith('--') ? token.indexOf('=') : -1
    const name = token.startsWith('--') ? token.slice(2, equals === -1 ? undefined : equals) : token.length === 2 ? byChar.get(token[1]!) : undefined
    const flag = name === undefined || !Object.hasOwn(spec.flags, name) ? undefined : spec.flags[name]!
    if (flag === undefined || given.has(name!)) return undefined
    if (flag.type === 'boolean') {
      if (equals !== -1) return undefined
      given.set(name!, true)
      continue
    }

    const value = equals === -1 ? argv[++index] : token.slice(equals + 1)
    // oclif takes a value that starts with "-" unless it names a flag; which it names is its call.
    if (value === undefined || value === '' || (value.startsWith('-') && value !== '-')) return undefined
    given.set(name!, value)
  }

  const flags: Record<string, unknown> = {}
  for (const [name, flag] of Object.entries(spec.flags)) {
    const input = given.get(name) ?? (flag.type !== 'boolean' && flag.env !== undefined && env[flag.env] ? env[flag.env] : undefined)
    if (input === undefined) {
      if (flag.default !== undefined) flags[name] = flag.default
      continue
    }

    const value = input === true || flag.type === 'boolean' ? true : parseValue(flag, input)
    if (value === undefined) return undefined
    flags[name] = value
  }

  const names = Object.keys(spec.args)
  if (spec.strict && tokens.length > names.length) return undefined
  const args: Record<string, string> = {}
  for (const [index, name] of names.entries()) {
    const arg = spec.args[name]!
    if (index < tokens.length) args[name] = tokens[index]!
    else if (arg.required || !arg.ignoreStdin) return undefined
  }

  // oclif orders argv by where each value first occurs in the command line: `rm a b a` gives
  // [a, a, b]. The same here, so that a command gets the same names whichever parser ran.
  const ordered = tokens.map((token, index) => ({token, index, first: argv.indexOf(token)}))
  ordered.sort((a, b) => a.first - b.first || a.index - b.index)
  return {flags, args, argv: ordered.map(({token}) => token)} as unknown as Parsed<S>
}

/** A flag's value as oclif parses it, or undefined where oclif would refuse it. */
function parseValue(flag: Exclude<FlagSpec, {type: 'boolean'}>, input: string): unknown {
  switch (flag.type) {
    case 'string': {
      return flag.options === undefined || flag.options.includes(input) ? input : undefined
    }

    case 'integer': {
      // oclif's own test of an integer flag.
      if (!/^-?\d+$/.test(input)) return undefined
      const value = Number.parseInt(input, 10)
      return (flag.min !== undefined && value < flag.min) || (flag.max !== undefined && value > flag.max) ? undefined : value
    }

    case 'custom': {
      try {
        return flag.parse(input)
      } catch {
        return undefined
      }
    }
  }
}
