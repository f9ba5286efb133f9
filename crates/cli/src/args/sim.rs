//! `slicelab sim`: the size of a simulated platform.

use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "\
With --centrals N (N > 1) the scenario runs twice, each on a new database of the PostgreSQL
server given by --db (or SLICELAB_TEST_PG, or SLICELAB_DB), as a role that may create
databases: against one central, then against N central replicas on one database, the simulated
nodes spread over them and the changes written through the first; propagation is printed side
by side.

The agents run in a process of their own (slicelab sim --agent-process, started for you);
--pin puts central on the first core and the agents on the second. One process holds at most
16000 long-polls (one connection each): with more nodes (--nodes 100000), every node is
registered and concerned by each change, and an evenly spread sample of them runs an agent.
Central's CPU seconds per change are printed next to the latencies.

Examples:
  slicelab sim --nodes 1000
  slicelab sim --nodes 10000 --pin
  slicelab -o json sim --nodes 100000")]
pub struct SimArgs {
    /// How many simulated nodes.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Database for the simulated central [default: a temporary SQLite file]; with
    /// `--centrals N`, a PostgreSQL server (`postgres://USER:PW@HOST/DB`).
    #[arg(long)]
    pub db: Option<String>,
    /// Longest wait for one phase, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Central replicas to compare with one central (1: one central only).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub centrals: u16,
    /// How many of the nodes run an agent [default: all, at most 16000].
    #[arg(long)]
    pub agents: Option<usize>,
    /// Pin central to the first core and the simulated agents to the second.
    #[arg(long)]
    pub pin: bool,
    /// Run as the simulated agents' process (started by `slicelab sim` itself; reads its
    /// instructions on stdin).
    #[arg(long, hide = true)]
    pub agent_process: bool,
}
