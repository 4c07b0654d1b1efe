package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process the harness started: a proxy or redis-server. Its
// output goes to a log file in the run's output directory.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
	// group: the process leads a process group of its own whose members
	// (nginx's workers) count as part of it and are killed with it.
	group bool
}

// startProc starts bin with args. The child gets SIGKILL if the harness dies
// without stopping it, so a crashed run leaves no server behind.
func startProc(name, logPath, bin string, args, env []string) (*proc, error) {
	return startProcAttr(name, logPath, bin, args, env, false)
}

// startProcGroup starts a process that forks workers (nginx) in a process
// group of its own. Its CPU and memory are the sum of it and its
// descendants; stop kills the whole group.
func startProcGroup(name, logPath, bin string, args, env []string) (*proc, error) {
	return startProcAttr(name, logPath, bin, args, env, true)
}

func startProcAttr(name, logPath, bin string, args, env []string, group bool) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("loadbench: %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: group}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("loadbench: starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{}), group: group}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// alive reports whether the process has not exited yet.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop asks the process to exit and kills it if it has not within 5
// seconds; a group leader's group is killed after it, in case a member
// outlived it.
func (p *proc) stop() {
	if p.group {
		defer func() { _ = syscall.Kill(-p.pid(), syscall.SIGKILL) }()
	}
	if !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// pids returns the process and, for a group leader, its descendants.
func (p *proc) pids() ([]int, error) {
	if !p.group {
		return []int{p.pid()}, nil
	}
	return descendants(p.pid())
}

// ticks is the CPU time of the process (and its descendants, for a group
// leader) in clock ticks.
func (p *proc) ticks() (int64, error) {
	pids, err := p.pids()
	if err != nil {
		return 0, err
	}
	return sumTicks(pids)
}

func sumTicks(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		n, err := cpuTicks(pid)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// sumRSS is the VmRSS of every process, added up, in KiB. Pages the
// processes share (nginx's workers and master) count once per process.
func sumRSS(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		rss, _, err := memKB(pid)
		if err != nil {
			return 0, err
		}
		sum += rss
	}
	return sum, nil
}

// descendants returns root and every process below it, from the parent
// fields of /proc/*/stat.
func descendants(root int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("loadbench: reading /proc: %w", err)
	}
	parent := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		if pp, err := parseStatPPID(b); err == nil {
			parent[pid] = pp
		}
	}
	return subtree(root, parent), nil
}

// subtree returns root and its descendants given each process's parent.
func subtree(root int, parent map[int]int) []int {
	children := map[int][]int{}
	for pid, pp := range parent {
		children[pp] = append(children[pp], pid)
	}
	out := []int{root}
	for i := 0; i < len(out) && i < 1<<16; i++ {
		kids := children[out[i]]
		slices.Sort(kids)
		out = append(out, kids...)
	}
	return out
}

// parseStatPPID extracts the parent pid (field 4) from /proc/PID/stat.
func parseStatPPID(b []byte) (int, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("loadbench: stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, errors.New("loadbench: stat: no parent pid")
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, fmt.Errorf("loadbench: stat ppid: %w", err)
	}
	return n, nil
}

// tail returns the last lines of the process's log, for error messages.
func (p *proc) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// exitError describes how a process ended, with its log's tail.
func (p *proc) exitError() error {
	return fmt.Errorf("loadbench: %s exited (%v); last log lines:\n%s", p.name, p.err, p.tail())
}

// cpuTicks returns utime+stime of a process in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("loadbench: reading stat of %d: %w", pid, err)
	}
	return parseStatTicks(b)
}

// parseStatTicks extracts utime+stime from /proc/PID/stat. The command name
// (field 2) is in parentheses and may contain spaces, so fields are counted
// from the last ')'.
func parseStatTicks(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("loadbench: stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so utime (14) and stime (15) are f[11], f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("loadbench: stat: %d fields after the name; want at least 13", len(f))
	}
	u, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("loadbench: stat utime: %w", err)
	}
	s, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("loadbench: stat stime: %w", err)
	}
	return u + s, nil
}

// memKB returns VmRSS and VmHWM (peak RSS since start) of a process, in KiB.
func memKB(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("loadbench: reading status of %d: %w", pid, err)
	}
	return parseStatusMem(b)
}

func parseStatusMem(b []byte) (rss, hwm int64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	found := 0
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("loadbench: status %s: %w", k, err)
		}
		if k == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
		found++
	}
	if found != 2 {
		return 0, 0, errors.New("loadbench: status: VmRSS or VmHWM missing")
	}
	return rss, hwm, nil
}

// clockTicks asks getconf for the kernel's USER_HZ, the unit of /proc stat times.
func clockTicks() (int64, error) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 0, fmt.Errorf("loadbench: getconf CLK_TCK: %w", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("loadbench: getconf CLK_TCK printed %q", out)
	}
	return n, nil
}

// machineTicks returns the busy and total clock ticks of all CPUs from the
// first line of /proc/stat.
func machineTicks() (busy, total int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("loadbench: reading /proc/stat: %w", err)
	}
	return parseMachineTicks(b)
}

func parseMachineTicks(b []byte) (busy, total int64, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	// cpu user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is already in user.
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("loadbench: /proc/stat: unexpected first line %q", line)
	}
	for i, s := range f[1:9] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("loadbench: /proc/stat: %w", err)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}
