//! NET_RX softirq time on one CPU, by the task it interrupted, measured by
//! two tiny BPF programs on the `softirq_entry` / `softirq_exit` raw
//! tracepoints.
//!
//! Why: without IRQ time accounting (Debian's and this kernel's config), a
//! softirq is charged to whatever task it interrupted. When another task
//! (a compile, a fuzzer) runs on the relay CPU, the relay's receive work
//! that RPS sends there is charged to it, and [`crate::nscpu`] would
//! subtract it with that task's time. These programs time every NET_RX
//! softirq on the CPU and add it up per interrupted thread group (tgid 0:
//! the CPU was idle), so that time can be given back to the relay.
//!
//! The programs are a few instructions, assembled here (no ELF, no loader
//! crate, no clang at run time); they cost two raw-tracepoint calls per
//! softirq, about 0.1 µs.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const NET_RX_SOFTIRQ: i32 = 3;
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const MAP_HASH: u32 = 1;
const MAP_ARRAY: u32 = 2;
const PROG_RAW_TRACEPOINT: u32 = 17;
/// Interrupted thread groups kept (a CPU sees few in a few minutes).
const MAX_TGIDS: u32 = 4096;

// Helpers by number (include/uapi/linux/bpf.h).
const MAP_LOOKUP: i32 = 1;
const MAP_UPDATE: i32 = 2;
const KTIME_GET_NS: i32 = 5;
const SMP_PROCESSOR_ID: i32 = 8;
const CURRENT_PID_TGID: i32 = 14;

/// One BPF instruction.
#[derive(Clone, Copy)]
#[repr(C)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}
const fn mov_reg(d: u8, s: u8) -> Insn {
    ins(0xbf, d, s, 0, 0)
}
const fn mov_imm(d: u8, imm: i32) -> Insn {
    ins(0xb7, d, 0, 0, imm)
}
const fn add_imm(d: u8, imm: i32) -> Insn {
    ins(0x07, d, 0, 0, imm)
}
const fn add_reg(d: u8, s: u8) -> Insn {
    ins(0x0f, d, s, 0, 0)
}
const fn sub_reg(d: u8, s: u8) -> Insn {
    ins(0x1f, d, s, 0, 0)
}
const fn rsh_imm(d: u8, imm: i32) -> Insn {
    ins(0x77, d, 0, 0, imm)
}
const fn jne_imm(d: u8, imm: i32, off: i16) -> Insn {
    ins(0x55, d, 0, off, imm)
}
const fn jeq_imm(d: u8, imm: i32, off: i16) -> Insn {
    ins(0x15, d, 0, off, imm)
}
const fn call(helper: i32) -> Insn {
    ins(0x85, 0, 0, 0, helper)
}
const fn exit() -> Insn {
    ins(0x95, 0, 0, 0, 0)
}
const fn ldx_dw(d: u8, s: u8, off: i16) -> Insn {
    ins(0x79, d, s, off, 0)
}
const fn stx_dw(d: u8, s: u8, off: i16) -> Insn {
    ins(0x7b, d, s, off, 0)
}
const fn stx_w(d: u8, s: u8, off: i16) -> Insn {
    ins(0x63, d, s, off, 0)
}
const fn st_w(d: u8, off: i16, imm: i32) -> Insn {
    ins(0x62, d, 0, off, imm)
}
const fn st_dw(d: u8, off: i16, imm: i32) -> Insn {
    ins(0x7a, d, 0, off, imm)
}
/// `dst = map fd` (two instructions, the kernel turns it into the map).
fn ld_map(d: u8, fd: RawFd) -> [Insn; 2] {
    [ins(0x18, d, 1, 0, fd), ins(0, 0, 0, 0, 0)]
}

/// softirq_entry: on `cpu`, for NET_RX, start[0] = now.
fn entry_prog(cpu: u32, start: RawFd) -> Vec<Insn> {
    let mut p = vec![
        mov_reg(6, 1),
        call(SMP_PROCESSOR_ID),
        jne_imm(0, cpu as i32, 13),
        ldx_dw(1, 6, 0), // args[0]: vec
        jne_imm(1, NET_RX_SOFTIRQ, 11),
        call(KTIME_GET_NS),
        stx_dw(10, 0, -8),
        st_w(10, -12, 0),
    ];
    p.extend(ld_map(1, start));
    p.extend([
        mov_reg(2, 10),
        add_imm(2, -12),
        mov_reg(3, 10),
        add_imm(3, -8),
        mov_imm(4, 0),
        call(MAP_UPDATE),
        mov_imm(0, 0),
        exit(),
    ]);
    p
}

/// softirq_exit: on `cpu`, for NET_RX with a start, acc[tgid] += now -
/// start, start = 0.
fn exit_prog(cpu: u32, start: RawFd, acc: RawFd) -> Vec<Insn> {
    let mut p = vec![
        mov_reg(6, 1),
        call(SMP_PROCESSOR_ID),
        jne_imm(0, cpu as i32, 37),
        ldx_dw(1, 6, 0),
        jne_imm(1, NET_RX_SOFTIRQ, 35),
        st_w(10, -4, 0),
    ];
    p.extend(ld_map(1, start));
    p.extend([
        mov_reg(2, 10),
        add_imm(2, -4),
        call(MAP_LOOKUP),
        jeq_imm(0, 0, 28),
        ldx_dw(7, 0, 0), // r7 = start
        jeq_imm(7, 0, 26),
        st_dw(0, 0, 0), // start = 0
        call(KTIME_GET_NS),
        sub_reg(0, 7),
        mov_reg(7, 0), // r7 = elapsed
        call(CURRENT_PID_TGID),
        rsh_imm(0, 32),
        stx_w(10, 0, -8), // key: tgid
    ]);
    p.extend(ld_map(1, acc));
    p.extend([
        mov_reg(2, 10),
        add_imm(2, -8),
        call(MAP_LOOKUP),
        jeq_imm(0, 0, 4),
        ldx_dw(1, 0, 0),
        add_reg(1, 7),
        stx_dw(0, 1, 0),       // only this CPU writes: no atomic needed
        ins(0x05, 0, 0, 9, 0), // goto out
        stx_dw(10, 7, -16),
    ]);
    p.extend(ld_map(1, acc));
    p.extend([
        mov_reg(2, 10),
        add_imm(2, -8),
        mov_reg(3, 10),
        add_imm(3, -16),
        mov_imm(4, 0),
        call(MAP_UPDATE),
        mov_imm(0, 0), // out
        exit(),
    ]);
    p
}

fn sys_bpf(cmd: libc::c_long, attr: &mut [u64]) -> io::Result<RawFd> {
    // SAFETY: attr is a live, zero-padded union bpf_attr of the given size.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size_of_val(attr)) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as RawFd)
    }
}

fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: a new fd the kernel just returned to us.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn map_create(kind: u32, key: u32, value: u32, max: u32) -> io::Result<OwnedFd> {
    let mut a = [0u64; 16];
    a[0] = u64::from(kind) | u64::from(key) << 32;
    a[1] = u64::from(value) | u64::from(max) << 32;
    sys_bpf(BPF_MAP_CREATE, &mut a).map(own)
}

fn prog_load(insns: &[Insn]) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut log = vec![0u8; 64 * 1024];
    let mut a = [0u64; 16];
    a[0] = u64::from(PROG_RAW_TRACEPOINT) | (insns.len() as u64) << 32;
    a[1] = insns.as_ptr() as u64;
    a[2] = license.as_ptr() as u64;
    a[3] = 1 | (log.len() as u64) << 32; // log_level 1, log_size
    a[4] = log.as_mut_ptr() as u64;
    sys_bpf(BPF_PROG_LOAD, &mut a).map(own).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(0);
        let text = String::from_utf8_lossy(&log[..end]);
        io::Error::new(e.kind(), format!("{e}; verifier: {}", text.trim()))
    })
}

fn attach(prog: &OwnedFd, tracepoint: &std::ffi::CStr) -> io::Result<OwnedFd> {
    let mut a = [0u64; 4];
    a[0] = tracepoint.as_ptr() as u64;
    a[1] = prog.as_raw_fd() as u64;
    sys_bpf(BPF_RAW_TRACEPOINT_OPEN, &mut a).map(own)
}

/// The programs attached, and their per-tgid totals; detached on drop.
#[derive(Debug)]
pub struct SoftirqClock {
    acc: OwnedFd,
    _links: [OwnedFd; 2],
    _progs: [OwnedFd; 2],
    _start: OwnedFd,
}

impl SoftirqClock {
    /// Starts timing NET_RX softirqs on `cpu` (needs CAP_BPF and
    /// CAP_PERFMON, or root).
    pub fn start(cpu: u32) -> io::Result<Self> {
        let start = map_create(MAP_ARRAY, 4, 8, 1)?;
        let acc = map_create(MAP_HASH, 4, 8, MAX_TGIDS)?;
        let pe = prog_load(&entry_prog(cpu, start.as_raw_fd()))?;
        let px = prog_load(&exit_prog(cpu, start.as_raw_fd(), acc.as_raw_fd()))?;
        let lx = attach(&px, c"softirq_exit")?;
        let le = attach(&pe, c"softirq_entry")?;
        Ok(Self {
            acc,
            _links: [le, lx],
            _progs: [pe, px],
            _start: start,
        })
    }

    /// NET_RX softirq ns so far, per interrupted tgid (0: idle).
    pub fn totals(&self) -> io::Result<Vec<(u32, u64)>> {
        let fd = self.acc.as_raw_fd() as u64;
        let mut out = Vec::new();
        let mut key: u32 = 0;
        let mut next: u32 = 0;
        let mut first = true;
        // Bounded by the map's size.
        for _ in 0..=MAX_TGIDS {
            let mut a = [0u64; 4];
            a[0] = fd;
            a[1] = if first { 0 } else { &key as *const u32 as u64 };
            a[2] = &mut next as *mut u32 as u64;
            match sys_bpf(BPF_MAP_GET_NEXT_KEY, &mut a) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
                Err(e) => return Err(e),
            }
            first = false;
            key = next;
            let mut v: u64 = 0;
            let mut a = [0u64; 4];
            a[0] = fd;
            a[1] = &key as *const u32 as u64;
            a[2] = &mut v as *mut u64 as u64;
            // A key removed meanwhile (never here: nothing deletes) is skipped.
            if sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut a).is_ok() {
                out.push((key, v));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_where_meant() {
        let target = |p: &[Insn], i: usize| (i as i64 + 1 + i64::from(p[i].off)) as usize;
        let e = entry_prog(1, 3);
        let out = e.len() - 2;
        assert_eq!((e[out].code, e[out + 1].code), (0xb7, 0x95));
        assert_eq!((target(&e, 2), target(&e, 4)), (out, out));
        let x = exit_prog(1, 3, 4);
        let out = x.len() - 2;
        assert_eq!((x[out].code, x[out + 1].code), (0xb7, 0x95));
        for i in [2, 4, 11, 13, 30] {
            assert_eq!(target(&x, i), out, "jump at {i}");
        }
        // No accumulator entry yet: to the insert, which stores elapsed.
        assert_eq!(x[target(&x, 26)].code, 0x7b);
        assert_eq!(x[target(&x, 26)].imm, 0);
    }

    #[test]
    fn loads_and_counts_as_root() {
        // The bench runs as root; so do these tests in CI.
        let c = SoftirqClock::start(0).expect("load the softirq programs (root needed)");
        // Some NET_RX on CPU 0 is likely but not certain: only the read
        // path is checked.
        c.totals().expect("read the totals");
    }
}
