package main

import "io"

// The shell scripts `completion` prints: each passes the words on the
// command line to `kubectl-device_login __complete` and offers what it
// answers, so that bash, zsh, fish, PowerShell and kubectl all complete
// from one source.

func writeKubectlCompleter(w io.Writer) {
	io.WriteString(w, `#!/bin/sh
# kubectl (1.26+) runs this as kubectl_complete-device_login to complete
# "kubectl device-login ..."; kubectl-device_login answers.
exec kubectl-device_login __complete "$@"
`)
}

// writeBash writes the bash script. bash splits the word under the
// cursor at = and : (COMP_WORDBREAKS) and replaces only its last piece,
// so the script reads the words from the line itself and strips from
// each candidate what bash keeps.
func writeBash(w io.Writer) {
	io.WriteString(w, `# bash completion for kubectl-device_login (kubectl device-login), bash 4+.
# kubectl-device_login __complete answers; this only carries the words.
_kubectl_device_login() {
    local line=${COMP_LINE:0:COMP_POINT} cur val keep rep directive c name
    local -a words answer
    read -ra words <<< "$line"
    if [[ ${#words[@]} -lt 2 || $line == *[[:space:]] ]]; then
        words+=("")
    fi
    cur=${words[${#words[@]}-1]}
    mapfile -t answer < <(kubectl-device_login __complete "${words[@]:1}" 2>/dev/null)
    (( ${#answer[@]} )) || return 0
    directive=${answer[${#answer[@]}-1]}
    [[ $directive =~ ^:[0-9]+$ ]] || return 0
    directive=${directive#:}
    unset 'answer[${#answer[@]}-1]'
    COMPREPLY=()
    (( directive & 1 )) && return 0
    # The value of --flag=value; bash replaces only the text after its
    # last word break (= or :), so the part before stays as it is.
    val=$cur
    [[ $cur == -*=* ]] && val=${cur#*=}
    rep=${COMP_WORDS[COMP_CWORD]}
    [[ -z ${rep//[=:]/} ]] && rep=
    keep=${val%"$rep"}
    for c in "${answer[@]}"; do
        name=${c%%$'\t'*}
        [[ $name == "$keep"* ]] || continue
        name=${name#"$keep"}
        [[ $name == *[!A-Za-z0-9._/:=@+,%-]* ]] && printf -v name %q "$name"
        COMPREPLY+=("$name")
    done
    if (( ${#COMPREPLY[@]} == 0 )); then
        if (( directive & 16 )); then
            compopt -o dirnames 2>/dev/null
        elif (( ! (directive & 4) )); then
            compopt -o default 2>/dev/null
        fi
    fi
    (( directive & 2 )) && compopt -o nospace 2>/dev/null
    return 0
}
complete -F _kubectl_device_login kubectl-device_login
`)
}

func writeZsh(w io.Writer) {
	io.WriteString(w, `#compdef kubectl-device_login
# zsh completion for kubectl-device_login (kubectl device-login).
# kubectl-device_login __complete answers; this only carries the words.
_kubectl_device_login() {
    local out directive cur=${words[CURRENT]} l
    local -i width=0
    local -a answer names shown nospace
    out=$(kubectl-device_login __complete "${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
    answer=("${(@f)out}")
    directive=${answer[-1]}
    [[ $directive == :<-> ]] || return 1
    directive=${directive#:}
    answer[-1]=()
    (( directive & 1 )) && return 1
    (( directive & 2 )) && nospace=(-S '')
    # --flag=value: complete the value, keep the flag.
    [[ $cur == -*=* ]] && compset -P '[^=]#='
    for l in "${answer[@]}"; do
        [[ -n $l ]] || continue
        names+=("${l%%$'\t'*}")
        (( ${#names[-1]} > width )) && width=${#names[-1]}
    done
    for l in "${answer[@]}"; do
        [[ -n $l ]] || continue
        if [[ $l == *$'\t'* ]]; then
            shown+=("${(r:width:)${l%%$'\t'*}}  -- ${l#*$'\t'}")
        else
            shown+=("$l")
        fi
    done
    if (( ${#names} )); then
        compadd -l -d shown "${nospace[@]}" -a names
    elif (( directive & 16 )); then
        _files -/
    elif (( ! (directive & 4) )); then
        _files
    fi
}
if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
    _kubectl_device_login "$@"
else
    compdef _kubectl_device_login kubectl-device_login
fi
`)
}

func writeFish(w io.Writer) {
	io.WriteString(w, `# fish completion for kubectl-device_login (kubectl device-login).
# kubectl-device_login __complete answers; this only carries the words.
function __kubectl_device_login_complete
    set -l cur (commandline -ct)
    set -l words (commandline -opc) "$cur"
    set -l answer (kubectl-device_login __complete $words[2..-1] 2>/dev/null)
    or return
    set -l directive (string match -r -- '^:([0-9]+)$' $answer[-1])[2]
    test -n "$directive"; or return
    set -e answer[-1]
    test (math "bitand($directive, 1)") -eq 0; or return
    # fish replaces the whole word: put --flag= back before each value.
    set -l flag (string replace -r -- '^(-[^=]*=)?.*$' '$1' "$cur")
    set -l val (string replace -r -- '^-[^=]*=' '' "$cur")
    if not set -q answer[1]
        if test (math "bitand($directive, 16)") -ne 0
            set answer (__fish_complete_directories "$val")
        else if test (math "bitand($directive, 4)") -eq 0
            set answer (__fish_complete_path "$val")
        end
    end
    for a in $answer
        printf '%s%s\n' "$flag" "$a"
    end
end
complete -c kubectl-device_login -f -a '(__kubectl_device_login_complete)'
`)
}

func writePowerShell(w io.Writer) {
	io.WriteString(w, `# PowerShell completion for kubectl-device_login (kubectl device-login).
# kubectl-device_login __complete answers; this only carries the words.
# Load it in $PROFILE: kubectl-device_login completion powershell | Out-String | Invoke-Expression
Register-ArgumentCompleter -Native -CommandName 'kubectl-device_login', 'kubectl-device_login.exe' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $words = @($commandAst.CommandElements |
        Where-Object { $_.Extent.StartOffset -lt $cursorPosition } |
        Select-Object -Skip 1 |
        ForEach-Object { $_.Extent.Text })
    if ($wordToComplete -eq '') {
        # Before PowerShell 7.3 (and in Legacy mode) an empty argument
        # is dropped; a quoted one reaches the program as empty.
        if ($PSVersionTable.PSVersion -ge [version]'7.3' -and $PSNativeCommandArgumentPassing -ne 'Legacy') {
            $words += ''
        } else {
            $words += '""'
        }
    }
    $answer = @(& kubectl-device_login __complete @words 2>$null)
    if ($answer.Count -eq 0 -or $answer[-1] -notmatch '^:(\d+)$') { return }
    $directive = [int]$Matches[1]
    if ($directive -band 1) { return }
    $flag = ''
    if ($wordToComplete -match '^(-[^=]*=)') { $flag = $Matches[1] }
    $found = $false
    foreach ($line in @($answer | Select-Object -SkipLast 1)) {
        $name, $desc = $line -split [char]9, 2
        if (-not $name) { continue }
        if (-not $desc) { $desc = $name }
        $text = $flag + $name
        if ($text -match '[\s''"$;,(){}@&|<>#\x60]') { $text = "'" + ($text -replace "'", "''") + "'" }
        $found = $true
        [System.Management.Automation.CompletionResult]::new($text, $name, 'ParameterValue', $desc)
    }
    # Nothing found and no file names wanted: an empty string keeps
    # PowerShell from completing file names instead.
    if (-not $found -and ($directive -band 4)) { '' }
}
`)
}
