#!/usr/bin/env bash
# Runs the sandbox tests (tests/all/sandbox.rs: the `sandbox::` tests of test binary `all`)
# inside a small virtual machine (QEMU: KVM where the host has hardware virtualization, else
# TCG emulation) whose only cgroup hierarchy is cgroup v2, mounted at /sys/fs/cgroup with the
# cpu, memory, pids and io controllers (a stock Debian kernel booted with cgroup_no_v1=all),
# so the v2 code path of host/sandbox/ runs on a machine whose own cgroups are v1 or
# hybrid. Exits with the test binary's exit code (125 if the VM itself failed).
#
#   scripts/cgroup-v2-vm.sh [ARGS...]      ARGS go to the test binary (--nocapture, a name filter such
#                                          as sandbox::memory; without a filter: sandbox::)
#
# How: the host's root filesystem is shared read-only with the guest over virtio-9p, so the
# test binary, /bin/sh, python3, dd, setsid and the glibc they link are the host's own (the
# repository is shared too, at /run/repo, since /tmp in the guest is its own); /tmp
# and /run are tmpfs, and /var/tmp is a fresh ext4 scratch disk on virtio-blk (the I/O test
# needs a real block device there). A busybox initramfs loads the few kernel modules needed,
# mounts everything (cgroup2 only, nothing v1) and runs the tests as root, their output going
# to the second serial port, which this script prints as it arrives.
#
# Environment:
#   JOBHOST_VM_CACHE        cache of kernels and run logs (default /var/tmp/jobhost-vm)
#   JOBHOST_VM_KERNEL       Debian kernel package (default linux-image-amd64: bookworm's 6.1;
#                           e.g. linux-image-6.12-amd64 for 6.12)
#   JOBHOST_VM_ACCEL        auto (KVM, else TCG), kvm or tcg (default auto)
#   JOBHOST_VM_MEM, _SMP    guest memory and CPUs (default 2G, 2)
#   JOBHOST_VM_TIMEOUT      seconds the tests may run in the guest before being killed (default 300)
#   JOBHOST_VM_CGROUP       host (default): the tests run in the root cgroup, as on a host;
#                           container: in a private cgroup namespace whose root cgroup holds
#                           the test process, as in a Docker/Podman/Kubernetes container
#   JOBHOST_VM_RETRY        1 (default): boot once more when the guest kernel stops without
#                           the tests' verdict (a hang under TCG); 0: fail at once
#   JOBHOST_VM_APPEND       extra kernel command line
#   JOBHOST_VM_TEST_BINARY  an already built `all` test binary (skips cargo)
#   CARGO_TARGET_DIR, RUST_LOG, RUST_BACKTRACE are respected (the latter two reach the tests).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${JOBHOST_VM_CACHE:-/var/tmp/jobhost-vm}
kernel_pkg=${JOBHOST_VM_KERNEL:-linux-image-amd64}
accel=${JOBHOST_VM_ACCEL:-auto}
mem=${JOBHOST_VM_MEM:-2G}
smp=${JOBHOST_VM_SMP:-2}
test_timeout=${JOBHOST_VM_TIMEOUT:-300}
layout=${JOBHOST_VM_CGROUP:-host}
case "$layout" in host | container) ;; *) echo "JOBHOST_VM_CGROUP must be host or container" >&2; exit 2 ;; esac
# Modules the guest needs, in the kernel's names; a leading '?' marks one that may be missing
# (renamed or built in). Dependencies are added from each module's own `depends=`.
wanted_modules=(virtio_pci virtio_blk 9pnet_virtio 9p ?crc32c_generic ?crc32c_intel ext4)

t0=$(date +%s.%N)
if [ -t 2 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
say() { printf '%s[cgroup-v2-vm]%s %s\n' "$bold" "$plain" "$*" >&2; }
die() { say "error: $*"; exit 2; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo

# --- host tools --------------------------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
[ -f /usr/share/seabios/bios-256k.bin ] || missing+=(seabios)
# The initramfs needs a static busybox (busybox-static replaces a dynamic one).
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then missing+=(busybox-static); fi
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
[ -x /usr/bin/python3 ] || missing+=(python3) # the OOM test runs /usr/bin/python3 in the guest
command -v flock >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

mkdir -p "$cache"

# --- kernel (cached) ---------------------------------------------------------------------
# A metapackage (linux-image-amd64) resolves to the versioned image it depends on.
resolve_kernel() {
    apt-cache show "$1" >/dev/null 2>&1 || return 1
    local dep
    dep=$(apt-cache depends "$1" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
    if [ -n "$dep" ]; then resolve_kernel "$dep"; else echo "$1"; fi
}
# apt-cache takes a second or more per question: remember the answer until apt's lists change.
mkdir -p "$cache/kernels"
lists=$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -printf '%T@ %f\n' 2>/dev/null | sort | sha256sum | cut -c1-16)
resolved="$cache/kernels/$kernel_pkg.resolved"
image_pkg=""
if [ -f "$resolved" ] && [ "$(cut -d' ' -f1 "$resolved")" = "$lists" ]; then
    image_pkg=$(cut -d' ' -f2 "$resolved")
else
    image_pkg=$(resolve_kernel "$kernel_pkg" || true)
fi
if [ -z "$image_pkg" ]; then
    say "apt knows no $kernel_pkg: updating its lists"
    $sudo apt-get update -qq
    image_pkg=$(resolve_kernel "$kernel_pkg") || die "no Debian package $kernel_pkg"
fi
echo "$lists $image_pkg" >"$resolved"
kdir="$cache/kernels/$image_pkg"
# Bump the layout number when what is cached for a kernel changes.
modules_key=$(printf '%s\n' layout-2 "${wanted_modules[@]}" | sha256sum | cut -c1-16)
# The uncompressed kernel inside a bzImage (as the kernel's scripts/extract-vmlinux does).
extract_vmlinux() {
    local image=$1 magic tool offset
    for pair in '\xfd7zXZ\x00:xz -dc --single-stream' '\x28\xb5\x2f\xfd:zstd -qdc' '\x1f\x8b\x08:gzip -dc'; do
        magic=${pair%%:*} tool=${pair#*:}
        for offset in $(LC_ALL=C grep -obUaP "$magic" "$image" | cut -d: -f1 | head -5); do
            # Trailing data after the stream makes some tools complain: the ELF magic decides.
            tail -c +$((offset + 1)) "$image" | $tool 2>/dev/null >"$image.tmp" || true
            if [ "$(head -c 4 "$image.tmp")" = $'\x7fELF' ]; then
                cat "$image.tmp" && rm -f "$image.tmp" && return 0
            fi
        done
    done
    rm -f "$image.tmp"
    return 1
}
exec 9>"$cache/.kernel.lock"
flock 9
if [ ! -f "$kdir/ready" ] || [ "$(cat "$kdir/ready")" != "$modules_key" ]; then
    tk=$(date +%s.%N)
    say "fetching $image_pkg into $kdir"
    rm -rf "$kdir" && mkdir -p "$kdir/modules"
    work=$(mktemp -d "$cache/.kernel.XXXXXX")
    if ! (cd "$work" && apt-get download -q "$image_pkg" >/dev/null 2>&1); then
        # Stale lists may name a kernel the archive no longer has: refresh them once.
        say "apt-get download $image_pkg failed: updating apt's lists"
        $sudo apt-get update -qq
        image_pkg=$(resolve_kernel "$kernel_pkg") || die "no Debian package $kernel_pkg"
        kdir="$cache/kernels/$image_pkg" && rm -rf "$kdir" && mkdir -p "$kdir/modules"
        (cd "$work" && apt-get download -q "$image_pkg" >/dev/null 2>&1) ||
            { rm -rf "$work"; die "apt-get download $image_pkg failed"; }
        rm -f "$resolved"
    fi
    dpkg-deb -x "$work"/*.deb "$work/x"
    release=$(ls "$work/x/lib/modules")
    cp "$work/x/boot/vmlinuz-$release" "$kdir/vmlinuz"
    cp "$work/x/boot/config-$release" "$kdir/config"
    # With PVH (an ELF entry point QEMU jumps to directly), the guest skips the BIOS's real
    # mode and the kernel's self-decompression: 4 s instead of 9 s to the root mount on TCG.
    if grep -qx CONFIG_PVH=y "$kdir/config"; then
        extract_vmlinux "$kdir/vmlinuz" >"$kdir/vmlinux" || rm -f "$kdir/vmlinux"
    fi
    mods="$work/x/lib/modules/$release"
    declare -A seen=()
    order=()
    add_module() { # NAME [optional]
        local name=$1 optional=${2:-} file pattern dep
        [ -n "${seen[$name]:-}" ] && return 0
        seen[$name]=1
        pattern=${name//[_-]/[_-]}
        file=$(find "$mods/kernel" -name "$pattern.ko" -o -name "$pattern.ko.xz" -o -name "$pattern.ko.zst" -o -name "$pattern.ko.gz" | head -1)
        if [ -z "$file" ]; then
            if grep -q "/$pattern\.ko" "$mods/modules.builtin" 2>/dev/null || [ -n "$optional" ]; then
                return 0 # built into the kernel, or not needed by this one
            fi
            die "$image_pkg has no module $name"
        fi
        case "$file" in
            *.xz) xz -dc "$file" ;; *.zst) zstd -qdc "$file" ;; *.gz) gzip -dc "$file" ;; *) cat "$file" ;;
        esac >"$kdir/modules/$name.ko"
        for dep in $(tr '\0' '\n' <"$kdir/modules/$name.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
            add_module "$dep"
        done
        order+=("$name")
    }
    for m in "${wanted_modules[@]}"; do
        if [ "${m#\?}" != "$m" ]; then add_module "${m#\?}" optional; else add_module "$m"; fi
    done
    printf '%s\n' "${order[@]}" >"$kdir/modules/order"
    echo "$release" >"$kdir/release"
    rm -rf "$work"
    echo "$modules_key" >"$kdir/ready"
    say "kernel $release cached ($(since "$tk") s; modules: ${order[*]})"
fi
flock -u 9
release=$(cat "$kdir/release")
kernel="$kdir/vmlinuz"
[ -s "$kdir/vmlinux" ] && kernel="$kdir/vmlinux"

# --- test binary -------------------------------------------------------------------------
if [ -n "${JOBHOST_VM_TEST_BINARY:-}" ]; then
    test_bin=$JOBHOST_VM_TEST_BINARY
else
    tb=$(date +%s.%N)
    say "building the test binary (cargo test -p jobhost --test all --no-run)"
    test_bin=$(cd "$root" && cargo test -p jobhost --test all --no-run --message-format=json-render-diagnostics |
        python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "all" \
            and m["profile"]["test"] and m.get("executable"):
        print(m["executable"])
' | tail -1)
    say "built in $(since "$tb") s: $test_bin"
fi
[ -x "$test_bin" ] || die "no test binary ($test_bin)"

# --- this run: initramfs, scratch disk, harness share ------------------------------------
mkdir -p "$cache/runs"
run=$(mktemp -d "$cache/runs/run.XXXXXX")
qemu_pid=""
# shellcheck disable=SC2317 # only called by the EXIT trap, which shellcheck 0.9 does not follow
cleanup() {
    if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; fi
    # Keep the last run's logs; drop its disk and copies.
    rm -rf "$cache/last" && mkdir -p "$cache/last"
    cp "$run"/*.log "$cache/last/" 2>/dev/null || true
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The test binary is copied, so a rebuild on the host during the run cannot change it.
mkdir -p "$run/harness"
cp "$test_bin" "$run/harness/sandbox-test"

q() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
test_args="--test-threads=1"
filtered=""
for a in "$@"; do
    test_args+=" $(q "$a")"
    case "$a" in -*) ;; *) filtered=1 ;; esac
done
# The binary holds every test; without a filter of the caller's, only the sandbox ones run.
[ -n "$filtered" ] || test_args+=" sandbox::"
guest_env="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8"
[ -n "${RUST_BACKTRACE:-}" ] && guest_env+=" RUST_BACKTRACE=$(q "$RUST_BACKTRACE")"
[ -n "${RUST_LOG:-}" ] && guest_env+=" RUST_LOG=$(q "$RUST_LOG")"

# Runs inside the guest, in the host's root filesystem, as root: settings, then the body.
{
    echo "#!/bin/sh"
    echo "layout=$(q "$layout") test_bin=$(q "$test_bin") workdir=/run/repo/host/node"
    echo "test_timeout=$(q "$test_timeout") test_args=$(q "$test_args") guest_env=$(q "$guest_env")"
    cat <<'EOF'
if [ "${1:-}" = inside ]; then
    if [ "$layout" = container ]; then
        # A private cgroup namespace: this cgroup is the root of what the tests see.
        umount /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup || exit 125
        echo "[vm] container view: /proc/self/cgroup $(cat /proc/self/cgroup), processes in /sys/fs/cgroup: $(tr '\n' ' ' </sys/fs/cgroup/cgroup.procs)"
    fi
    cd "$workdir" || exit 125
    eval "exec env -i $guest_env timeout -s KILL $test_timeout /run/harness/sandbox-test $test_args </dev/null"
fi
echo "[vm] kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), $(dmesg | grep -q 'Hypervisor detected: KVM' && echo KVM || echo 'no KVM (TCG)')"
echo "[vm] cgroup mounts: $(awk '$3 ~ /^cgroup/ { printf "%s on %s (%s) ", $3, $2, $4 }' /proc/mounts)"
echo "[vm] /sys/fs/cgroup/cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "[vm] /var/tmp: $(awk '$2 == "/var/tmp" { print $1, $3 }' /proc/mounts) ($(stat -c '%Hd:%Ld' /var/tmp 2>/dev/null || stat -c %d /var/tmp))"
echo "[vm] running $test_bin $test_args"
cg=/sys/fs/cgroup
if [ "$layout" = container ]; then
    # As Docker, Podman or Kubernetes on cgroup v2 do: the container's cgroup has the
    # controllers and holds the container's processes (here this shell).
    echo "+cpu +memory +pids +io" >$cg/cgroup.subtree_control && mkdir $cg/container &&
        echo $$ >$cg/container/cgroup.procs || exit 125
    cg=$cg/container
    cd / && unshare -m -C --propagation private /bin/sh "$0" inside
else
    /bin/sh "$0" inside
fi
rc=$?
[ $rc = 137 ] && echo "[vm] the tests were killed after $test_timeout s (JOBHOST_VM_TIMEOUT)"
echo "[vm] after the tests: $cg/cgroup.subtree_control: $(cat $cg/cgroup.subtree_control)"
if [ -d $cg/jobhost ]; then
    echo "[vm] $cg/jobhost/cgroup.subtree_control: $(cat $cg/jobhost/cgroup.subtree_control)"
    left=$(find $cg/jobhost -mindepth 1 -maxdepth 1 -type d -printf '%f ')
    echo "[vm] job cgroups left under $cg/jobhost: ${left:-none}"
    for d in $left; do echo "[vm]   $d: processes [$(tr '\n' ' ' <$cg/jobhost/$d/cgroup.procs)]"; done
fi
exit $rc
EOF
} >"$run/harness/run.sh"

# The guest's init, in a busybox initramfs.
initrd="$run/initrd"
mkdir -p "$initrd"/{bin,dev,proc,sys,newroot,lib/modules}
cp /bin/busybox "$initrd/bin/busybox"
ln -s busybox "$initrd/bin/sh" # init links the other applets
cp "$kdir"/modules/*.ko "$kdir/modules/order" "$initrd/lib/modules/"
cat >"$initrd/init" <<'EOF'
#!/bin/sh
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
out=/dev/ttyS1
stty -F $out raw -echo 2>/dev/null
finish() { # exit code
    echo "@@JOBHOST-VM-EXIT=$1@@" >$out
    sync
    umount /newroot/var/tmp 2>/dev/null
    poweroff -f
}
fail() { echo "[vm] init: $*" | tee $out; finish 125; }
while read -r m; do insmod /lib/modules/$m.ko || fail "insmod $m failed"; done </lib/modules/order
for _ in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.05; done
r=/newroot
p9="trans=virtio,version=9p2000.L,msize=512000,cache=loose"
mount -t 9p -o ro,$p9 hostroot $r || fail "cannot mount the host's root over 9p"
mount -t proc proc $r/proc &&
mount -t sysfs sysfs $r/sys &&
mount -t cgroup2 cgroup2 $r/sys/fs/cgroup &&
mount -t devtmpfs devtmpfs $r/dev &&
mkdir -p $r/dev/shm $r/dev/pts &&
mount -t tmpfs -o mode=1777 tmpfs $r/dev/shm &&
mount -t devpts devpts $r/dev/pts &&
mount -t tmpfs -o mode=1777 tmpfs $r/tmp &&
mount -t tmpfs -o mode=755 tmpfs $r/run &&
mount -t ext4 /dev/vda $r/var/tmp &&
chmod 1777 $r/var/tmp &&
mkdir $r/run/harness $r/run/repo &&
mount -t 9p -o ro,$p9 harness $r/run/harness &&
mount -t 9p -o ro,$p9 repo $r/run/repo || fail "cannot set up the guest's filesystems"
chroot $r /bin/sh /run/harness/run.sh >$out 2>&1
finish $?
EOF
chmod +x "$initrd/init"
(cd "$initrd" && find . | busybox cpio -o -H newc -R 0:0 2>/dev/null) >"$run/initrd.cpio"

# Fresh scratch disk for /var/tmp (inode tables and journal initialised now, so the guest's
# ext4 does no background writes while the I/O test measures).
truncate -s 512M "$run/scratch.img"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$run/scratch.img"

# --- boot --------------------------------------------------------------------------------
# KVM only helps with hardware virtualization (kvm_intel, kvm_amd). Some hosts offer /dev/kvm
# without it (kvm_pvm, the software "pagetable-based VM" of nested sandboxes), which accepts a
# stock kernel but runs it through its instruction emulator: a Debian kernel had not printed
# its first line after 7 minutes. TCG boots the same kernel in about 10 s.
if [ "$accel" = auto ]; then
    if [ -r /dev/kvm ] && [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
        accel=kvm
    else
        why="no /dev/kvm"
        kvm_modules=$(cd /sys/module && echo kvm_*)
        [ -e /dev/kvm ] && why="/dev/kvm is not hardware-assisted (modules: $kvm_modules)"
        [ -e /dev/kvm ] && [ ! -w /dev/kvm ] && why="/dev/kvm is not writable"
        say "using TCG (software emulation): $why"
        say "note: under TCG, exec-heavy work costs ~50x the CPU time it does natively (sh -c true: ~110 ms instead of ~2 ms), so assertions on absolute CPU times may fail here for that reason alone"
        accel=tcg
    fi
fi
boot() { # ACCEL
    local cpu=host
    local accel_opts=$1
    [ "$1" = tcg ] && cpu=max accel_opts=tcg,thread=multi
    : >"$run/output.log"
    : >"$run/console.log"
    qemu-system-x86_64 \
        -accel "$accel_opts" -cpu "$cpu" -M pc -m "$mem" -smp "$smp" \
        -nodefaults -no-user-config -display none -vga none -no-reboot \
        -kernel "$kernel" -initrd "$run/initrd.cpio" \
        -append "console=ttyS0 cgroup_no_v1=all panic=-1 random.trust_cpu=on ${JOBHOST_VM_APPEND:-}" \
        -serial "file:$run/console.log" -serial "file:$run/output.log" \
        -fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap" \
        -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
        -fsdev "local,id=harness,path=$run/harness,security_model=none,readonly=on" \
        -device virtio-9p-pci,fsdev=harness,mount_tag=harness \
        -fsdev "local,id=repo,path=$root,security_model=none,readonly=on,multidevs=remap" \
        -device virtio-9p-pci,fsdev=repo,mount_tag=repo \
        -drive "file=$run/scratch.img,format=raw,if=none,id=scratch,cache=unsafe" \
        -device virtio-blk-pci,drive=scratch \
        2>"$run/qemu.log" &
    qemu_pid=$!
    # Stream the tests' output while the VM runs; stop it after the VM has powered off.
    local deadline=$((SECONDS + test_timeout + 120)) status=0
    tail -n +1 -f --pid="$qemu_pid" "$run/output.log" | tr -d '\r' &
    local tail_pid=$!
    local booted=$((SECONDS + 60))
    while kill -0 "$qemu_pid" 2>/dev/null; do
        if [ "$1" = kvm ] && [ $SECONDS -gt $booted ] && ! grep -q '^\[vm\] kernel' "$run/output.log"; then
            say "KVM started, but the guest had not reached its init in 60 s: killing it"
            kill "$qemu_pid"
        elif [ $SECONDS -gt $deadline ]; then
            say "the VM did not finish in $((test_timeout + 120)) s: killing it"
            kill "$qemu_pid"
        fi
        sleep 0.2
    done
    wait "$qemu_pid" || status=$?
    qemu_pid=""
    wait "$tail_pid" 2>/dev/null || true
    return $status
}
tv=$(date +%s.%N)
say "booting Linux $release ($accel, $smp CPUs, $mem) with only cgroup v2 (layout: $layout)"
status=0
boot "$accel" || status=$?
if [ "$status" != 0 ] && [ "${JOBHOST_VM_ACCEL:-auto}" = auto ] && [ "$accel" = kvm ] &&
    ! grep -q '^\[vm\] kernel' "$run/output.log"; then
    say "KVM does not work here ($(head -c 300 "$run/qemu.log")): falling back to TCG"
    accel=tcg
    tv=$(date +%s.%N)
    status=0
    boot tcg || status=$?
fi
vm_time=$(since "$tv")

verdict() { sed -n 's/.*@@JOBHOST-VM-EXIT=\([0-9]*\)@@.*/\1/p' "$run/output.log" | tail -1; }
no_verdict() { # why the VM gave no verdict: qemu's own words and the guest kernel's
    say "the VM ended without reporting the tests' exit code (qemu status $status)"
    [ -s "$run/qemu.log" ] && say "qemu: $(cat "$run/qemu.log")"
    # The first report of a stuck or crashed kernel names the cause; the console's tail is
    # usually the middle of a stack trace.
    if grep -q -E 'BUG:|Oops|soft lockup|hung_task|rcu.*stall|Kernel panic' "$run/console.log"; then
        say "first kernel report on the guest console:"
        grep -m 1 -A 12 -E 'BUG:|Oops|soft lockup|hung_task|rcu.*stall|Kernel panic' "$run/console.log" |
            tr -d '\r' >&2
    fi
    say "last lines of the guest console:"
    tail -n 40 "$run/console.log" | tr -d '\r' >&2
}
code=$(verdict)
if [ -z "$code" ] && [ "${JOBHOST_VM_RETRY:-1}" = 1 ]; then
    # No verdict means the guest kernel stopped (seen once in CI under TCG: a soft lockup in
    # kmalloc during a cgroup mkdir, in a run that passed on every other boot), not that a
    # test failed: a failing test reports its exit code. One fresh boot tells the two apart;
    # both boots' reports are kept in the log.
    no_verdict
    cp "$run/console.log" "$run/console.first.log"
    say "booting once more: a stopped guest kernel is not a test verdict (JOBHOST_VM_RETRY=0 disables this)"
    tv=$(date +%s.%N)
    status=0
    boot "$accel" || status=$?
    vm_time=$(since "$tv")
    code=$(verdict)
fi
if [ -z "$code" ]; then
    no_verdict
    say "logs kept in $cache/last/"
    exit 125
fi
say "tests exited with $code (VM $vm_time s on $accel, $(since "$t0") s in all; logs in $cache/last/)"
exit "$code"
