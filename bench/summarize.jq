# summarize.jq: the Markdown tables of a run-bench.sh results.jsonl
# (jq -s -r -f summarize.jq results.jsonl). See bench/README.md, "Reading the tables".
#
# A cell is (backing, MTU, workload, q, -f); a row is a target in a cell, per
# client I/O mode. Values are medians over the rounds. Every ratio against the
# reference target (vblade, or vblade_s for durable runs) is the ratio of the
# medians plus the lowest and highest per-round ratio (round r of the target
# against round r of the reference, same cell and mode). When that range
# straddles 1.0 the row is "no difference".

def median: sort | if length == 0 then null
	elif length % 2 == 1 then .[length/2|floor]
	else (.[length/2 - 1] + .[length/2]) / 2 end;
def r(n): if . == null then "-" else (. * pow(10; n) | round) / pow(10; n) | tostring end;
def k: if . == null then "-" elif . >= 10000 then "\(. / 1000 | r(1))k" else (. | r(0)) end;
def wlorder: {"randread":0,"seqread":1,"seqwrite":2,"randwrite":3,"randrw":4}[.] // 9;
def torder: {"vblade":0,"vblade_s":0,"reflect":1,"vblade_sd":1,"aoed_sync":2,"aoed_sync_inline":3,"aoed_sync_direct":4,"aoed_sync_dwrites":4,"aoed":5,"local_fio":6}[.] // 9;
def modeorder: {"rxring":0,"ring":1,"mmsg":2}[.] // 9;
def backing: (.backing // "tmpfs") + (if .direct_io == true then " O_DIRECT" elif .direct_io == "writes" then " O_DIRECT writes" else "" end);
def mode: .client_io // .io // "default";
def cellkey: "\(.backing // "tmpfs")/\(.mtu_set)/\(.workload)/\(.q_set)/\(.force_qd // false)";
# CPU seconds per GB over the measured window when aoe-load sampled it (-p),
# else over the whole client run (warm-up included)
def cpugb: .cpu_s_per_gb;

# {med, lo, hi, n} of x/ref: ratio of the medians, range of the per-round ratios
def ratio($x; $ref; f):
	if $ref == null then null else
	[ $x.rounds | to_entries[] | select($ref.rounds[.key] != null)
	  | ((.value | f) as $a | ($ref.rounds[.key] | f) as $b
	     | if $a == null or $b == null or $b == 0 then empty else $a / $b end) ] as $per
	| ([$x.recs[] | f] | map(select(. != null)) | median) as $ma
	| ([$ref.recs[] | f] | map(select(. != null)) | median) as $mb
	| { med: (if $ma == null or $mb == null or $mb == 0 then null else $ma / $mb end),
	    lo: ($per | min), hi: ($per | max), n: ($per | length) } end;
# higher is better (req/s): faster / slower / no difference
def verdict($up; $down):
	if . == null or .n == 0 then "-"
	elif .n < 2 then "1 round: no spread"
	elif .lo > 1 then $up elif .hi < 1 then $down else "no difference" end;
def fmt: if . == null or .med == null then "-"
	else "\(.med | r(2))x" + (if .n > 1 then " (\(.lo | r(2))-\(.hi | r(2)))" else "" end) end;

[ .[] | select(.tgt != null) ] as $all
| ($all | map(mode) | unique | sort_by(modeorder)) as $modes
| (if any($all[]; .tgt == "vblade_s") then "vblade_s" else "vblade" end) as $ref
# one entry per (cell, mode, target)
| [ $all | group_by([cellkey, mode, .tgt])[]
    | (map(select(.failed != true))) as $ok | ($ok | map(backing) | unique) as $kinds | {
	key: (.[0] | cellkey), mode: (.[0] | mode),
	backing: (.[0].backing // "tmpfs"),
	kind: (if ($kinds | length) == 0 then (.[0].backing // "tmpfs") else ($kinds | join("/")) end),
	mtu: .[0].mtu_set, workload: .[0].workload, q: .[0].q_set, tgt: .[0].tgt,
	f: (.[0].force_qd // false),
	recs: $ok,
	rounds: (reduce $ok[] as $o ({}; .["\($o.round)"] = $o)),
	failed: (length - ($ok | length)),
	qd: ($ok | map(.qd // 0) | max), qds: ($ok | map(.qd // 0) | unique),
	sectors: ($ok | map(.sectors) | max),
	rps: ($ok | map(.req_per_s) | median),
	rps_min: ($ok | map(.req_per_s) | min),
	rps_max: ($ok | map(.req_per_s) | max),
	mbs: ($ok | map(.mb_per_s) | median),
	p50: ($ok | map(.p50_us | values) | median),
	p99: ($ok | map(.p99_us | values) | median),
	cpugb: ($ok | map(cpugb | select(. != null)) | median),
	cpupct: ($ok | map(select(.target_cpu_pct != null) | .target_cpu_pct) | median),
	err: ($ok | map(.errors) | add),
	retx: ($ok | map(.retransmits) | add),
	stale: ($ok | map(.stale // 0) | add),
	devqd: ($ok | map(select(.dev_avg_qd != null) | .dev_avg_qd) | median),
	devawait: ($ok | map(select(.dev_r_await_ms != null) | .dev_r_await_ms) | median),
	devutil: ($ok | map(select(.dev_util != null) | .dev_util * 100) | median),
	busy: ($ok | map(select(.machine_busy_pct != null) | .machine_busy_pct) | median)
  } ] as $rows
| (reduce $rows[] as $x ({}; .["\($x.key)|\($x.mode)|\($x.tgt)"] = $x)) as $by
# ratios against the reference and (for the goals) against the reflector
| [ $rows[] | . as $x
    | $by["\(.key)|\(.mode)|\($ref)"] as $v
    | . + { ref: $v,
	    eqd: ($v == null or $x.tgt == $ref or ($x.qds == $v.qds and ($x.qds | length) == 1)),
	    rps_r: ratio($x; $v; .req_per_s), p50_r: ratio($x; $v; .p50_us),
	    p99_r: ratio($x; $v; .p99_us), cpu_r: ratio($x; $v; cpugb),
	    rfl_r: ratio($x; $by["\(.key)|\(.mode)|reflect"]; .req_per_s) } ] as $rows
| ($rows | sort_by(.backing, .mtu, (.workload | wlorder), .q, .f, (.tgt | torder), .tgt, (.mode | modeorder))) as $rows
| def vs: if .tgt == $ref then "reference" elif .ref == null then "-"
	else (.rps_r | fmt) + " " + (.rps_r | verdict("faster"; "slower"))
	     + (if .eqd then "" else ", UNEQUAL qd \(.qds | map(tostring) | join("/")) vs \(.ref.qds | map(tostring) | join("/"))" end) end;
  def every: if any(.[]; .eqd | not) then "UNEQUAL qd: no verdict" else
	[ .[] | .rps_r | verdict("faster"; "slower") ] | unique
	| if length == 1 then .[0] + (if .[0] == "faster" or .[0] == "slower" then " in every mode" else "" end)
	  else "mixed" end end;
  def lower($v): if .tgt == $ref or .ref == null or $v.med == null then "-" else ($v | fmt) + " " + ($v | verdict("higher"; "lower")) end;
  def qcol: "\(.q)\(if .f then " -f" else "" end)";

  "## Side by side: every client I/O mode (\($modes | join(", ")))",
  "",
  "req/s: median (min-max over the rounds). vs \($ref): ratio of the medians (lowest-highest per-round ratio); \"no difference\" when that range straddles 1.0.",
  "",
  ( "| backing | MTU | workload | KiB/req | q | target | qd | " + ($modes | map("\(.) req/s | \(.) p50 / p99 us | \(.) CPU s/GB | \(.) vs \($ref)") | join(" | ")) + " | req/s vs \($ref), every mode |" ),
  ( "|" + ([range(0; 7 + 4 * ($modes | length) + 1)] | map("---") | join("|")) + "|" ),
  ( $rows | group_by(.key, .tgt) | sort_by(.[0] | [.backing, .mtu, (.workload | wlorder), .q, .f, (.tgt | torder), .tgt])[]
    | . as $g | (reduce $g[] as $x ({}; .[$x.mode] = $x)) as $m | $g[0] as $h
    | "| \($h.kind) | \($h.mtu) | \($h.workload) | \(if $h.sectors then $h.sectors / 2 else "-" end) | \($h | qcol) | \($h.tgt)\(if ($g | map(.failed) | add) > 0 then " (\($g | map(.failed) | add) failed)" else "" end) | \($g | map(.qds[]) | unique | map(tostring) | join("/")) | "
      + ( $modes | map(. as $mo | $m[$mo]
	  | if . == null then "- | - | - | -" else
	    "\(.rps | k) (\(.rps_min | k)-\(.rps_max | k)) | \(.p50 | r(1)) / \(.p99 | r(1)) | \(.cpugb | r(2)) | \(vs)" end) | join(" | "))
      + " | \(if $h.tgt == $ref then "reference" else ($g | every) end) |" ),
  "",
  "## Every run, per client I/O mode",
  "",
  "Ratios: ratio of the medians (lowest-highest per-round ratio), \"no difference\" when that range straddles 1.0. For p50, p99 and CPU/GB lower is better.",
  "",
  "| backing | MTU | workload | q | target | mode | qd | KiB/req | req/s (median) | req/s min-max | MB/s | p50 us | p99 us | disk qd | disk util % | disk r_await ms | target CPU % | machine CPU % | CPU s/GB | errors | retx | req/s vs \($ref) | p50 vs \($ref) | p99 vs \($ref) | CPU/GB vs \($ref) |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ( $rows[]
    | "| \(.kind) | \(.mtu) | \(.workload) | \(qcol) | \(.tgt)\(if .failed > 0 then " (\(.failed) failed)" else "" end) | \(.mode) | \(.qds | map(tostring) | join("/") | if . == "" then "-" else . end) | \(if .sectors then .sectors / 2 else "-" end) | \(.rps | r(0)) | \(.rps_min | r(0))-\(.rps_max | r(0)) | \(.mbs | r(1)) | \(.p50 | r(1)) | \(.p99 | r(1)) | \(.devqd | r(1)) | \(.devutil | r(0)) | \(.devawait | r(2)) | \(.cpupct | r(0)) | \(.busy | r(0)) | \(.cpugb | r(2)) | \(.err // "-") | \(.retx // "-")\(if (.stale // 0) > 0 then " (\(.stale) late)" else "" end) | \(if .tgt == $ref then "-" else vs end) | \(lower(.p50_r)) | \(lower(.p99_r)) | \(lower(.cpu_r)) |" ),
  # issue #14's goals for aoed against vblade (and the reflector), tmpfs rows only
  ( [ $rows[] | select(.tgt == "aoed" and $ref == "vblade" and .backing == "tmpfs" and (.f | not)) ] as $a
    | if ($a | length) == 0 then empty else
    ( [ {g: "q1: req/s >= 1.0x vblade", m: "rps_r", hi: true, t: 1.0, q: 1},
        {g: "q1: p50 <= vblade's", m: "p50_r", hi: false, t: 1.0, q: 1},
        {g: "q8: p99 <= vblade's", m: "p99_r", hi: false, t: 1.0, q: 8},
        {g: "q32 MTU 1500: req/s >= 1.3x vblade", m: "rps_r", hi: true, t: 1.3, q: 32, mtu: 1500,
         wl: ["randread", "seqwrite"]},
        {g: "q32 MTU 9000: req/s >= 1.0x vblade", m: "rps_r", hi: true, t: 1.0, q: 32, mtu: 9000,
         wl: ["seqread", "seqwrite"]},
        {g: "q32: req/s >= 0.6x the reflector", m: "rfl_r", hi: true, t: 0.6, q: 32} ] ) as $goals
    | def status($gl): if . == null or .med == null then "-"
	  elif ($gl.hi and .med < $gl.t) or (($gl.hi | not) and .med > $gl.t) then "not met"
	  elif ($gl.hi and .lo >= $gl.t) or (($gl.hi | not) and .hi <= $gl.t) then "met"
	  else "likely" end;
      "",
      "## Goals (issue #14): aoed, every mode",
      "",
      "Per mode: ratio of the medians (lowest-highest per-round ratio), then met (every round meets it), likely (the ratio of the medians meets it, not every round does) or not met. A goal holds only where it is met in every mode.",
      "",
      "| goal | MTU | workload | " + ($modes | join(" | ")) + " | every mode |",
      ( "|" + ([range(0; 4 + ($modes | length))] | map("---") | join("|")) + "|" ),
      ( $goals[] as $gl
	| $a | map(select(.q == $gl.q and ($gl.mtu == null or .mtu == $gl.mtu)
		      and ($gl.wl == null or (.workload as $w | $gl.wl | index([$w]) != null))))
	| group_by(.mtu, (.workload | wlorder))[]
	| (reduce .[] as $x ({}; .[$x.mode] = ($x[$gl.m] + {eqd: ($gl.m == "rfl_r" or $x.eqd)}))) as $m
	| [ $modes[] | $m[.] | if . != null and (.eqd | not) then "UNEQUAL qd" else status($gl) end ] as $st
	| "| \($gl.g) | \(.[0].mtu) | \(.[0].workload) | "
	  + ([ range(0; $modes | length) as $i | $m[$modes[$i]] as $v | "\($v | fmt) \($st[$i])" ] | join(" | "))
	  + " | \(if ($st | unique) == ["met"] then "**met**" elif ($st | index("likely")) != null and ($st - ["met", "likely"]) == [] then "likely" else "not met" end) |" )
    end )
