//! `Builder::pin`: each core's threads run on the CPU given for it (both of
//! them in the threaded runtime, the one thread inline), and a list that
//! cannot be honoured is refused before anything starts. One test in its
//! own binary, so that no other runtime's threads share the thread names
//! it looks up.

use std::io::ErrorKind;
use std::path::Path;

use ixtcp_sockapi::testing::TestNet;
use ixtcp_sockapi::{Mode, Runtime};

/// The CPUs a thread may run on, as its `status` file in `/proc` lists
/// them (`"3"`, `"0-7"`, `"0,2"`).
fn allowed_cpus(task: &Path) -> Option<String> {
    let status = std::fs::read_to_string(task.join("status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(|v| v.trim().to_string())
}

/// [`allowed_cpus`] of the calling thread.
fn allowed_here() -> Option<String> {
    allowed_cpus(Path::new("/proc/thread-self"))
}

/// [`allowed_cpus`] of this process's thread named `name`, if there is one.
fn allowed_cpus_of(name: &str) -> Option<String> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            return allowed_cpus(&dir);
        }
    }
    None
}

/// The CPUs this thread may run on, in the order the OS lists them.
fn usable_cpus() -> Vec<usize> {
    core_affinity::get_core_ids().expect("affinity mask").into_iter().map(|c| c.id).collect()
}

#[test]
fn pinned_threads_run_on_their_cpu_and_bad_lists_are_refused() {
    let net = TestNet::new();
    let engine = |_| Ok(net.engine([10, 0, 0, 1].into()));
    // The last CPU: unlike the default mask, unless the machine has one.
    let cpu = *usable_cpus().last().expect("at least one CPU");
    for mode in [Mode::Inline, Mode::Threaded] {
        let rt = Runtime::builder().mode(mode).pin([cpu]).build(1, engine).expect("build");
        let seen = rt
            .run(|ctx| {
                let app = allowed_here();
                let stack = allowed_cpus_of(&format!("ixtcp-stack-{}", ctx.core()));
                (app, stack)
            })
            .expect("run");
        let (app, stack) = seen.into_iter().next().expect("one core");
        assert_eq!(app, Some(cpu.to_string()), "{mode:?}: the application thread");
        match mode {
            Mode::Threaded => assert_eq!(stack, Some(cpu.to_string()), "threaded: the stack thread"),
            Mode::Inline => assert_eq!(stack, None, "inline: no stack thread"),
        }
    }
    // Not pinned: the threads keep the whole mask.
    let rt = Runtime::builder().mode(Mode::Inline).build(1, engine).expect("build");
    let app = rt.run(|_| allowed_here()).expect("run");
    assert_eq!(app[0], allowed_here());

    let refused = |cpus: Vec<usize>, cores: usize, says: &str| {
        let err = Runtime::builder().pin(cpus.clone()).build(cores, engine).expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{cpus:?}: {err}");
        assert!(err.to_string().contains(says), "{cpus:?} for {cores} cores: {err:?} should say {says:?}");
    };
    refused(vec![], 1, "empty");
    refused(vec![cpu], 2, "1 CPUs for 2 cores");
    refused(vec![1 << 20], 1, "no CPU 1048576");
}
