#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The command's help, its man page, the README and the bash completion say
# the same thing.  --help is printed from the option tables that parse the
# command line, so it is the reference:
#   - every command and subcommand is in the man page (.Cm name) and every
#     command in the README;
#   - every option a command's --help lists is in the man page (Fl \-name),
#     and every option the man page names is taken by some command;
#   - the completion offers each command, subcommand and option, read from
#     the same --help.
# usage: cli_docs.sh PIIVAULT_BIN SOURCE_DIR
set -eu
bin=$1
src=$2
man=$src/dist/piivault.1
readme=$src/README.md
fail=0
no() { echo "cli_docs: $*" >&2; fail=1; }

commands=$("$bin" help | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p')
[ -n "$commands" ] || { echo "cli_docs: no commands in piivault help" >&2; exit 1; }

paths=""
for c in $commands; do
	[ "$c" = help ] && continue
	help=$("$bin" "$c" --help)
	subs=$(sed -n '/^subcommands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p' <<<"$help")
	if [ -n "$subs" ]; then
		for s in $subs; do paths="$paths $c:$s"; done
	else
		paths="$paths $c"
	fi
	grep -q "^\.It Cm $c\b" "$man" || no "man page: no command $c"
	grep -qE "(piivault|\\\$pv) $c\b" "$readme" || no "README: no command $c"
done

all_opts="--help --version"
for p in $paths; do
	words=${p/:/ }
	help=$("$bin" $words --help) || { no "$words --help failed"; continue; }
	if [ "${p#*:}" != "$p" ]; then
		grep -qE "^\.It Cm ${p%%:*} ${p#*:}\b" "$man" ||
		    no "man page: no subcommand $words"
	fi
	for o in $(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$help" | sort -u); do
		all_opts="$all_opts $o"
		[ "$o" = --help ] && continue
		grep -qF -- "Fl \\${o#-}" "$man" ||
		    no "man page: $words takes $o, the page does not say"
	done
done
for o in $(grep -oE 'Fl \\-[a-z][a-z0-9-]*' "$man" | sed 's/^Fl \\/-/' | sort -u); do
	case " $all_opts " in
	*" $o "*) ;;
	*) no "man page names $o, which no command takes" ;;
	esac
done

# The completion, driven as bash drives it.
# shellcheck source=/dev/null
. "$src/dist/piivault.bash-completion"
complete_words() {
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_piivault
	printf '%s\n' "${COMPREPLY[@]}"
}
for c in $commands; do
	complete_words "$bin" "${c:0:2}" | grep -qx "$c" ||
	    no "completion: ${c:0:2} does not offer $c"
done
for p in $paths; do
	words=${p/:/ }
	if [ "${p#*:}" != "$p" ]; then
		complete_words "$bin" "${p%%:*}" "" | grep -qx "${p#*:}" ||
		    no "completion: $p: no subcommand ${p#*:}"
	fi
	for o in $("$bin" $words --help | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u); do
		# shellcheck disable=SC2086
		complete_words "$bin" $words -- | grep -qx -- "$o" ||
		    no "completion: $words does not offer $o"
	done
done
# An option's value is not taken for the command.
complete_words "$bin" --data-dir /tmp k | grep -qx kms ||
    no "completion: after --data-dir DIR, k does not offer kms"

[ "$fail" -eq 0 ] && echo "cli_docs: help, man page, README and completion agree"
exit "$fail"
