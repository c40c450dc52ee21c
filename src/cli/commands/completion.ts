import { VERBS } from '../../api/grammar';
import { UsageError } from '../../common/errors';
import { type Command, commandArgs } from '../command';

/** Actions whose next word is their argument, the user's to type (docker-run: its image). */
const TAKES_WORD = [
  'id',
  'url',
  'remote',
  'tunnel',
  'udptunnel',
  'docker-run',
  'docker-label',
  'balance',
  'health',
  'idle',
  'allow',
];

/** Only plain words go into the script: nothing in it is ever quoted wrong. */
function words(list: readonly string[]): string {
  for (const w of list) if (!/^[A-Za-z0-9._-]+$/.test(w)) throw new Error(`not a plain word: ${w}`);
  return list.join(' ');
}

/**
 * The bash script. It splits the line itself (COMP_LINE up to the cursor, at blanks: bash's
 * COMP_WORDS also splits at ':' and '=', which -H unix:///... is full of). Segment ids come
 * from `wormhole list --json`, run with the -H/-K given on the line; only words shaped like
 * ids are kept, and nothing is evaluated: candidates are compared as strings and added to
 * COMPREPLY (never passed through compgen -W, which expands its word list).
 */
export function bashScript(commands: readonly Command[], globalFlags: readonly string[]): string {
  const cases = commands
    .map((c) => {
      const flags = ['--help', ...(c.json ? ['--json'] : []), ...(c.flags ?? [])];
      return `    ${c.name}) flags=(${words(flags)}); ids=${c.takesId ? 1 : 0}; first=${c.flagsFirst ? 1 : 0} ;;`;
    })
    .join('\n');
  const names = words([...commands.map((c) => c.name), 'help']);
  return `# bash completion for wormhole: commands, flags, create's actions, segment ids.
# Install: wormhole completion bash > /etc/bash_completion.d/wormhole

# Add the words that start with the word being completed ($cur) to COMPREPLY.
_wormhole_add() {
  local w
  for w in "$@"; do
    [[ $w == "$cur"* ]] && COMPREPLY+=("$w")
  done
  return 0
}

# Segment ids from the daemon the line names (its -H and -K), via 'wormhole list --json'.
_wormhole_ids() {
  local re='"id": *"([A-Za-z0-9._-]+)"' line id
  while IFS= read -r line; do
    while [[ $line =~ $re ]]; do
      id=\${BASH_REMATCH[1]}
      line=\${line#*"\${BASH_REMATCH[0]}"}
      _wormhole_add "$id"
    done
  done < <(timeout 3 "$prog" "\${globals[@]}" list --json 2>/dev/null)
  return 0
}

_wormhole() {
  COMPREPLY=()
  local line=\${COMP_LINE-\${COMP_WORDS[*]}}
  line=\${line:0:\${COMP_POINT-\${#line}}}
  local words=()
  read -ra words <<<"$line"
  [[ -z $line || $line =~ [[:space:]]$ ]] && words+=("")
  local cword=$((\${#words[@]} - 1))
  local cur=\${words[cword]} prog=\${words[0]} globals=() cmd= i=1 w
  # the global flags (kept for list --json), then the command
  while ((i < cword)); do
    w=\${words[i]}
    case $w in
    -H | --host | -K | --key)
      ((i + 1 < cword)) || break
      globals+=("$w" "\${words[i + 1]}")
      i=$((i + 2))
      continue
      ;;
    -H=* | --host=* | -K=* | --key=*) globals+=("$w") ;;
    -*) ;;
    *)
      cmd=$w
      i=$((i + 1))
      break
      ;;
    esac
    i=$((i + 1))
  done
  if [[ -z $cmd ]]; then
    case \${words[cword - 1]} in
    -K | --key)
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      return 0
      ;;
    -H | --host) return 0 ;;
    esac
    if [[ $cur == -* ]]; then
      _wormhole_add ${words(globalFlags)}
    else
      _wormhole_add ${names}
    fi
    return 0
  fi
  # the command's words before the one being completed: flags, and how many others
  local flags=() ids=0 first=0 npos=0 j
  for ((j = i; j < cword; j++)); do
    [[ \${words[j]} == -* && $npos == 0 ]] || npos=$((npos + 1))
  done
  case $cmd in
${cases}
    help)
      ((npos == 0)) && _wormhole_add ${names}
      return 0
      ;;
    *) return 0 ;;
  esac
  if [[ $cur == -* ]]; then
    ((first && npos > 0)) || _wormhole_add "\${flags[@]}"
  elif [[ $cmd == create ]]; then
    case \${words[cword - 1]} in
    ${TAKES_WORD.join(' | ')}) ;;
    *) _wormhole_add ${words(VERBS)} ;;
    esac
  elif [[ $cmd == completion ]]; then
    ((npos == 0)) && _wormhole_add bash
  elif ((ids && npos == 0)); then
    _wormhole_ids
  fi
  return 0
}

complete -F _wormhole wormhole`;
}

/** `wormhole completion bash`; the commands and global flags are main's. */
export function completionCommand(
  commands: () => readonly Command[],
  globalFlags: readonly string[],
): Command {
  return {
    name: 'completion',
    summary: 'print a shell completion script (bash)',
    json: false,
    usage: `usage: wormhole completion bash

Prints a bash completion script: commands, global flags, create's actions, and segment ids
for delete (asked of the daemon with 'wormhole list --json', with the -H and -K typed on
the line). Install it once:

  wormhole completion bash > /etc/bash_completion.d/wormhole
  source <(wormhole completion bash)        # this shell only`,
    async run(args, ctx) {
      const { positional } = commandArgs(this, args, 1);
      if (positional.length === 0) throw new UsageError('needs a shell: bash');
      if (positional[0] !== 'bash') throw new UsageError(`no script for "${positional[0]}": bash only`);
      ctx.out(bashScript(commands(), globalFlags));
      return 0;
    },
  };
}
