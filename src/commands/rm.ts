import {Args} from '@oclif/core'

import {DfsError} from '../lib/errors.js'
import {DfsCommand, caFlag, jsonFlag, masterFlag, tokenFlag} from '../lib/base-command.js'

export default class RmCommand extends DfsCommand {
  static override summary = 'Delete a file: its record goes at once, every keeper deletes its replica.'
  static override examples = ['<%= config.bin %> rm video.mp4']
  static override args = {name: Args.string({description: 'name of a stored file', required: true})}
  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag, json: jsonFlag}

  async run(): Promise<void> {
    const {args, flags} = await this.parse(RmCommand)
    const {removeFile} = await import('../roles/client/admin.js')
    const master = await this.master(flags)
    const outcome = await removeFile(master, args.name).then(
      (result) => ({ok: true as const, result}),
      (error: unknown) => {
        if (error instanceof DfsError) return {ok: false as const, error}
        throw error
      },
    )
    this.reportEach([outcome], {json: flags.json, subject: () => ({name: args.name}), entry: (result) => result, line: (result) => `removed ${result.name}`, what: 'removals'})
  }
}
