#include <gtest/gtest.h>

#include <csignal>
#include <limits>

#include "cli/sweep_command.h"
#include "cli/sweep_status.h"
#include "core/errors.h"
#include "core/run_lock.h"
#include "core/strings.h"
#include "test_util.h"

namespace stoch {
namespace {

using test::train_losses;

TEST(Sweep, ExpandsTheGridTimesSeeds) {
  cli::SweepArgs a;
  a.grid = {"optim.lr=0.1,0.2", "model.n_layer=1,2"};
  a.seeds = 2;
  const auto runs = cli::expand_sweep(a);
  ASSERT_EQ(runs.size(), 8u);
  EXPECT_EQ(runs[0].name, "optim.lr=0.1,model.n_layer=1,seed=1");
  EXPECT_EQ(runs[0].sets,
            (std::vector<std::string>{"optim.lr=0.1", "model.n_layer=1", "run.seed=1"}));
  EXPECT_EQ(runs[7].name, "optim.lr=0.2,model.n_layer=2,seed=2");
  a.grid = {"optim.lr"};
  try {
    cli::expand_sweep(a);
    ADD_FAILURE() << "a grid entry without '=' was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--grid optim.lr: expected KEY=VALUE", 0), 0u)
        << e.what();
  }
  a.grid = {"optim.lr=0.1,,0.2"};
  EXPECT_THROW(cli::expand_sweep(a), InputError);
  // Two grid points in one folder would run one and skip the other as finished.
  const auto message = [&](const std::vector<std::string>& grid) {
    a.grid = grid;
    try {
      cli::expand_sweep(a);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({"run.name=a/b,a_b"})
                .find("two grid points share the folder name "
                      "run.name=a_b,seed=1"),
            std::string::npos);
  EXPECT_NE(message({"model.activation=gelu,gelu"}).find("share the folder name"),
            std::string::npos);
  // Equal numbers spelled apart were one setup counted as two runs apiece in compare.
  EXPECT_NE(message({"optim.lr=0.001,1e-3"})
                .find("--grid optim.lr=0.001,1e-3: 0.001 and 1e-3 are the same value"),
            std::string::npos);
  // The seed is the sweep's (--seeds, --first-seed): a grid over run.seed gave every run seed 1.
  EXPECT_NE(
      message({"run.seed=1,2"}).find("--grid run.seed=1,2: the sweep gives each run its seed"),
      std::string::npos);
  a.sets = {"run.seed=7"};
  EXPECT_NE(message({}).find("--set run.seed=7: the sweep gives each run its seed"),
            std::string::npos);
  a.sets = {};
  EXPECT_NE(
      message({"run.name=" + std::string(260, 'x')}).find("over the 255 a file name may hold"),
      std::string::npos);
  // A name that fits, but not with its console log's suffix, made the run's log fail to open and
  // stopped the sweep part way.
  EXPECT_NE(message({"run.name=" + std::string(230, 'x')})
                .find("bytes; with .console.log that is over the 255 a file name may hold"),
            std::string::npos);
  // Seeds that would pass the largest int64 are refused by the options that gave them.
  a.seeds = 3;
  a.first_seed = std::numeric_limits<int64_t>::max() - 1;
  EXPECT_NE(message({}).find("--first-seed 9223372036854775806 with --seeds 3: the last seed"),
            std::string::npos)
      << message({});
  a.seeds = 2;
  ASSERT_EQ(message({}), "no error");
}

// Runs to resume or skip keep their own config.yaml: a call whose config or --set would start
// them otherwise is refused, naming the key, rather than mixing two settings in one sweep.
TEST(Sweep, RefusesToMixSettingsWithRunsBegunOtherwise) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(10));
  const std::string cmd =
      "sweep " + dir + "/c.yaml --grid optim.lr=0.01,0.02 --seeds 1 --out " + dir + "/sw";
  auto r = test::run_stoch(cmd);
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch(cmd + " --set train.batch_size=8");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("optim.lr=0.01,seed=1/config.yaml: train.batch_size is 4 where this "
                          "sweep's config and --set give 8 (2 runs begun with other settings"),
            std::string::npos)
      << r.output;
  r = test::run_stoch(cmd + " --set train.batch_size=8 --status");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("train.batch_size is 4 where"), std::string::npos) << r.output;
  // run.threads is each call's own, and the same settings go on as before.
  r = test::run_stoch(cmd + " --set run.threads=1");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("0 to do"), std::string::npos) << r.output;
}

TEST(Sweep, SkipsFinishedRunsAndResumesInterruptedOnes) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(10));
  const std::string cmd =
      "sweep " + dir + "/c.yaml --grid optim.lr=0.01,0.02 --seeds 2 --jobs 2 --out " + dir + "/sw";
  auto r = test::run_stoch(cmd);
  ASSERT_EQ(r.code, 0) << r.output;
  // Each run that ends says how far the sweep is, with an estimate while runs are left.
  EXPECT_NE(r.output.find(" runs finished; about "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" done; 4 of 4 runs finished\n"), std::string::npos) << r.output;
  const std::string one = dir + "/sw/optim.lr=0.01,seed=1";
  for (const char* name : {"optim.lr=0.01,seed=1", "optim.lr=0.01,seed=2", "optim.lr=0.02,seed=1",
                           "optim.lr=0.02,seed=2"})
    EXPECT_TRUE(test::fs::exists(dir + "/sw/" + name + "/checkpoints/step-00000010/manifest.json"))
        << name;
  const auto before = train_losses(one);
  ASSERT_EQ(before.size(), 10u);
  const std::string metrics = test::read_text(one + "/metrics.jsonl");

  // Everything finished: a second call does nothing.
  r = test::run_stoch(cmd);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("4 runs in"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0 to do"), std::string::npos) << r.output;
  EXPECT_EQ(test::read_text(one + "/metrics.jsonl"), metrics);

  // Lose the final checkpoint: the run counts as interrupted and is resumed to the same end.
  test::fs::remove_all(one + "/checkpoints/step-00000010");
  r = test::run_stoch(cmd);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("1 to do"), std::string::npos) << r.output;
  // A sweep that goes on says at once how much is left, at the pace its runs have shown.
  EXPECT_NE(r.output.find("sweep: 3 of 4 runs finished; about "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("resuming optim.lr=0.01,seed=1"), std::string::npos) << r.output;
  EXPECT_EQ(train_losses(one), before);  // resumed bit for bit
}

// A finished run kept as results only (its checkpoints dropped, say after copying config.yaml and
// metrics.jsonl off a machine that is gone) still counts as finished; one whose metrics stop
// short of its last step is trained again from the start.
TEST(Sweep, RunKeptAsResultsOnlyCountsAsFinished) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(10));
  const std::string cmd =
      "sweep " + dir + "/c.yaml --grid optim.lr=0.01,0.02 --seeds 1 --jobs 2 --out " + dir + "/sw";
  auto r = test::run_stoch(cmd);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string kept = dir + "/sw/optim.lr=0.01,seed=1";
  const std::string cut = dir + "/sw/optim.lr=0.02,seed=1";
  const std::string metrics = test::read_text(kept + "/metrics.jsonl");
  test::fs::remove_all(kept + "/checkpoints");
  test::fs::remove_all(cut + "/checkpoints");
  const auto full = train_losses(cut);
  ASSERT_EQ(full.size(), 10u);
  std::string lines = test::read_text(cut + "/metrics.jsonl");
  const size_t at = lines.find("{\"step\":6,");
  ASSERT_NE(at, std::string::npos) << lines;
  lines.resize(at);  // the run's lines up to step 5 only
  test::write_text(cut + "/metrics.jsonl", lines);
  ASSERT_EQ(train_losses(cut).size(), 5u);

  r = test::run_stoch(cmd + " --status");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("2 runs: 1 finished, 0 running, 0 interrupted, 1 not started"),
            std::string::npos)
      << r.output;
  // The cut run's pace is this machine's, but on another grid point than the kept run's: nothing
  // to scale the kept pace by, and the status says so.
  EXPECT_NE(r.output.find("no grid point has runs trained here too, so their paces count as they "
                          "are"),
            std::string::npos)
      << r.output;
  r = test::run_stoch(cmd);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("optim.lr=0.01,seed=1 finished; skipping"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("1 to do"), std::string::npos) << r.output;
  EXPECT_EQ(test::read_text(kept + "/metrics.jsonl"), metrics);
  EXPECT_FALSE(test::fs::exists(kept + "/checkpoints"));
  EXPECT_TRUE(cli::progress_of(kept, 10).results_only);  // its pace was measured elsewhere
  EXPECT_FALSE(cli::progress_of(cut, 10).results_only);
  EXPECT_EQ(train_losses(cut), full);  // trained again from the start, to the same losses

  // A run killed in its final evaluation, before its first checkpoint, has logged its last train
  // line but not that evaluation: not finished.
  const std::string killed = dir + "/killed";
  test::fs::create_directories(killed);
  test::fs::copy_file(kept + "/config.yaml", killed + "/config.yaml");
  const size_t final_eval = metrics.find("{\"step\":10,\"split\":\"eval\"");
  ASSERT_NE(final_eval, std::string::npos) << metrics;
  test::write_text(killed + "/metrics.jsonl", metrics.substr(0, final_eval));
  const auto p = cli::progress_of(killed, 10);
  EXPECT_EQ(p.logged_step, 10);
  EXPECT_FALSE(p.results_only);
  EXPECT_NE(p.state, cli::RunState::kFinished);
}

// Two sweeps of the same command over one folder split its runs: each claims a run's lock
// before starting it, looks at the run again under the lock and hands the lock to the run's
// process, so a run the other has taken or finished is left to it and no run is started twice.
// The one that ends first may have to say that runs were left to the other.
TEST(Sweep, TwoSweepsOverOneFolderShareItsRuns) {
  constexpr int kSteps = 40;
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(kSteps));
  const std::vector<std::string> args = {"sweep",   dir + "/c.yaml",
                                         "--grid",  "optim.lr=0.01,0.02,0.03",
                                         "--seeds", "2",
                                         "--jobs",  "1",
                                         "--set",   "run.threads=1",
                                         "--out",   dir + "/sw"};
  const pid_t first = test::spawn_stoch(args, dir + "/first.log");
  const pid_t second = test::spawn_stoch(args, dir + "/second.log");
  const int codes[] = {test::wait_exit(first), test::wait_exit(second)};
  const std::string logs[] = {test::read_text(dir + "/first.log"),
                              test::read_text(dir + "/second.log")};
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(logs[k].find(" exited with "), std::string::npos) << logs[k];
    EXPECT_EQ(logs[k].find("runs failed"), std::string::npos) << logs[k];
    if (codes[k] != 0) {
      EXPECT_EQ(codes[k], 1) << logs[k];
      EXPECT_NE(logs[k].find("runs were left to the processes writing them"), std::string::npos)
          << logs[k];
    }
  }
  for (const char* lr : {"0.01", "0.02", "0.03"})
    for (const char* seed : {"1", "2"}) {
      const std::string name = std::string("optim.lr=") + lr + ",seed=" + seed + "\n";
      size_t starts = 0;
      for (const auto& log : logs)
        for (const char* verb : {"starting ", "resuming "})
          for (size_t at = log.find(verb + name); at != std::string::npos;
               at = log.find(verb + name, at + 1))
            ++starts;
      EXPECT_EQ(starts, 1u) << name << logs[0] << "\n----\n" << logs[1];
    }
  // Whichever ended last found every run finished.
  EXPECT_TRUE(codes[0] == 0 || codes[1] == 0) << logs[0] << "\n----\n" << logs[1];
  for (const char* lr : {"0.01", "0.02", "0.03"})
    for (const char* seed : {"1", "2"}) {
      const std::string run = dir + "/sw/optim.lr=" + lr + ",seed=" + seed;
      const auto losses = train_losses(run);
      EXPECT_EQ(losses.size(), static_cast<size_t>(kSteps)) << run;
      EXPECT_EQ(test::count_lines(run + "/metrics.jsonl", "\"train\""), kSteps) << run;
    }
  std::string again;
  for (const auto& a : args) again += " '" + a + "'";
  const auto r = test::run_stoch(again);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("6 runs in " + dir + "/sw, 0 to do"), std::string::npos) << r.output;
}

// The sweep shares the cores among its jobs unless run.threads is given, which then wins.
// A sweep started with SIGCHLD ignored (a script's `trap '' CHLD`) still reads every run's exit:
// the kernel had reaped the runs unread, so the sweep started one and said all were finished.
TEST(Sweep, AnIgnoredSigchldIsNotInheritedByTheSweep) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(4));
  const auto r =
      test::run_command("bash -c \"trap '' CHLD; exec " + std::string(STOCH_BINARY) + " sweep " +
                        dir + "/c.yaml --seeds 2 --jobs 1 --out " + dir + "/sw\"");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* run : {"/sw/seed=1", "/sw/seed=2"})
    EXPECT_EQ(test::train_losses(dir + run).size(), 4u) << run << "\n" << r.output;
}

// A fault every run shares (here a data file that is not there) is refused once, before the
// sweep writes anything: its first run is built as `stoch config --check` builds it.
TEST(Sweep, AnInputEveryRunSharesIsRefusedBeforeAnyRunStarts) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml",
                   "task: lm\ndata: {source: text, files: [" + dir + "/nope.txt]}\n");
  const auto r = test::run_stoch("sweep " + dir + "/c.yaml --grid optim.lr=0.01,0.02 --seeds 2 " +
                                 "--jobs 1 --out " + dir + "/sw");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(dir + "/nope.txt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" (the sweep's first run, optim.lr=0.01,seed=1, is refused; nothing "
                          "was started)"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("starting "), std::string::npos) << r.output;
  EXPECT_FALSE(test::fs::exists(dir + "/sw"));
}

// Runs that refuse their input on their own (a grid point the model refuses) are counted apart:
// retrying the same command cannot help them, as the sweep's last line had suggested.
TEST(Sweep, RunsThatRefuseTheirInputAreSaidToNeedAFix) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(2));
  const auto r = test::run_stoch("sweep " + dir + "/c.yaml --grid model.n_head=2,3 --seeds 2 " +
                                 "--jobs 1 --out " + dir + "/sw");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("sweep: 2 runs failed (2 refused their input, exit 2: fix what their "
                          "console logs name first); re-run the same command to retry them"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(test::train_losses(dir + "/sw/model.n_head=2,seed=2").size(), 2u) << r.output;
}

TEST(Sweep, RunThreadsGivenWithSetWins) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(6));
  auto r = test::run_stoch("sweep " + dir + "/c.yaml --seeds 1 --jobs 1 --set run.threads=3 " +
                           "--out " + dir + "/sw");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("run.threads as set"), std::string::npos) << r.output;
  const std::string config = test::read_text(dir + "/sw/seed=1/config.yaml");
  EXPECT_NE(config.find("\n  threads: 3 "), std::string::npos) << config;

  // A run this sweep resumes gets the thread count given now, not the one it started with.
  test::fs::remove_all(dir + "/sw/seed=1/checkpoints/step-00000006");
  r = test::run_stoch("sweep " + dir + "/c.yaml --seeds 1 --jobs 1 --set run.threads=2 " +
                      "--out " + dir + "/sw");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming seed=1"), std::string::npos) << r.output;
  const std::string resumed = test::read_text(dir + "/sw/seed=1/config.yaml");
  EXPECT_NE(resumed.find("\n  threads: 2 "), std::string::npos) << resumed;
}

// The time left: each run at its own pace, else its grid point's, else the sweep's, placed on
// the first free of `jobs` slots after the running runs.
TEST(Sweep, TimeLeftSchedulesTheRestAtThePaceSeenSoFar) {
  using cli::Progress;
  using cli::RunState;
  Progress finished{RunState::kFinished, 100, 100, false, 100, 0.1};
  Progress running{RunState::kInterrupted, 50, 100, true, 60, 0.1};  // 40 steps left: 4 s
  Progress fresh{RunState::kFresh, 0, 100, false, 0, 0};
  const std::vector<Progress> runs = {finished, running, fresh, fresh};
  const std::vector<std::string> groups = {"a", "a", "a", "b"};
  // Two slots: the first fresh run (its grid point's pace, 10 s) takes the free one at 0, the
  // second (the sweep's pace) the running run's at 4 s.
  EXPECT_NEAR(*cli::time_left(runs, groups, 2), 14, 1e-9);
  EXPECT_NEAR(*cli::time_left(runs, groups, 1), 24, 1e-9);
  EXPECT_NEAR(*cli::time_left(runs, groups, 8), 10, 1e-9);
  // Not running, a run starts again from its checkpoint (50 steps, not 40).
  auto stopped = runs;
  stopped[1].running = false;
  EXPECT_NEAR(*cli::time_left(stopped, groups, 3), 10, 1e-9);
  EXPECT_NEAR(*cli::time_left(stopped, groups, 1), 25, 1e-9);
  // A grid point's pace is the mean of its runs', and wins over the sweep's.
  auto slow = runs;
  slow[0].seconds_per_step = 0.3;  // grid point a: (0.3 + 0.1) / 2
  EXPECT_NEAR(*cli::time_left({slow[0], slow[1], slow[2]}, {"a", "a", "a"}, 1), 4 + 20, 1e-9);
  EXPECT_NEAR(*cli::time_left({finished}, {"a"}, 1), 0, 1e-9);
  EXPECT_FALSE(cli::time_left({fresh, fresh}, {"a", "b"}, 2));
}

// Runs kept as results only were trained elsewhere (a study that moved machines): their paces
// are scaled by how the runs trained here compare with them on the same grid points.
TEST(Sweep, TimeLeftScalesThePacesOfRunsTrainedElsewhere) {
  using cli::Progress;
  using cli::RunState;
  Progress kept_a{RunState::kFinished, 100, 100, false, 100, 0.4};
  kept_a.results_only = true;
  Progress kept_b = kept_a;
  kept_b.seconds_per_step = 0.8;
  Progress here_a{RunState::kFinished, 100, 100, false, 100, 0.1};  // a quarter of kept_a's
  Progress fresh{RunState::kFresh, 0, 100, false, 0, 0};
  const std::vector<Progress> runs = {kept_a, kept_b, here_a, fresh};
  const std::vector<std::string> groups = {"a", "b", "a", "b"};
  EXPECT_NEAR(*cli::pace_here_over_kept(runs, groups), 0.25, 1e-12);
  EXPECT_NEAR(*cli::time_left(runs, groups, 1), 0.8 * 0.25 * 100, 1e-9);  // not 80 s
  // Two runs here: the geometric mean of their ratios (0.5 and 0.125).
  Progress here_b{RunState::kFinished, 100, 100, false, 100, 0.1};
  here_a.seconds_per_step = 0.2;
  EXPECT_NEAR(*cli::pace_here_over_kept({kept_a, kept_b, here_a, here_b}, groups), 0.25, 1e-12);
  // No grid point with runs of both kinds: nothing to scale by, the kept paces count as they are.
  const std::vector<std::string> apart = {"a", "b", "c", "b"};
  EXPECT_FALSE(cli::pace_here_over_kept(runs, apart));
  EXPECT_NEAR(*cli::time_left(runs, apart, 1), 80, 1e-9);
  // A grid point not yet run anywhere goes at this machine's pace (here_a's 0.2, on grid point c),
  // not at the mean of all (0.4, 0.8, 0.2) that the unscaled kept paces would drag up.
  const std::vector<std::string> unrun = {"a", "b", "c", "d"};
  EXPECT_NEAR(*cli::time_left({kept_a, kept_b, here_a, fresh}, unrun, 1), 0.2 * 100, 1e-9);
  // With no run trained here, the kept runs' mean is all there is.
  EXPECT_NEAR(*cli::time_left({kept_a, kept_b, fresh}, {"a", "b", "d"}, 1), 0.6 * 100, 1e-9);
}

// A run's pace is the median over the gaps between its train lines: one long gap (the run paused
// by SIGSTOP for 1000 s) does not set it, and a line still being written is passed over.
TEST(Sweep, PaceIsTheMedianGapSoAPauseDoesNotSetIt) {
  const std::string dir = test::temp_dir("sweep");
  std::string lines;
  double elapsed = 0;
  for (int step = 1000; step <= 6000; step += 1000) {
    elapsed += step == 4000 ? 1000 : 1;
    lines += "{\"step\":" + std::to_string(step) +
             ",\"split\":\"train\",\"elapsed_s\":" + std::to_string(elapsed) + "}\n";
    if (step == 3000) lines += "{\"step\":3000,\"split\":\"eval\",\"eval/x\":1}\n";
  }
  test::write_text(dir + "/metrics.jsonl", lines + "{\"step\":7000,\"split\":\"tr");
  auto p = cli::progress_of(dir, 10000);
  EXPECT_EQ(p.state, cli::RunState::kFresh);
  EXPECT_EQ(p.logged_step, 6000);
  EXPECT_DOUBLE_EQ(p.seconds_per_step, 0.001);
  // Too few gaps for a median: the whole time over the steps.
  test::write_text(dir + "/metrics.jsonl",
                   "{\"step\":1000,\"split\":\"train\",\"elapsed_s\":2}\n"
                   "{\"step\":2000,\"split\":\"train\",\"elapsed_s\":8}\n");
  p = cli::progress_of(dir, 10000);
  EXPECT_EQ(p.logged_step, 2000);
  EXPECT_DOUBLE_EQ(p.seconds_per_step, 0.004);
}

// The runs are started from the sweep's own executable, even when the file it was started from
// is replaced meanwhile (a rebuild during a long sweep): one sweep, one version of the code.
TEST(Sweep, RunsUseTheSweepsOwnExecutableWhenItsFileIsReplaced) {
  const std::string dir = test::temp_dir("sweep");
  test::fs::copy_file(STOCH_BINARY, dir + "/stoch");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(400));
  const pid_t pid =
      test::spawn({dir + "/stoch", "sweep", dir + "/c.yaml", "--seeds", "2", "--jobs", "1", "--set",
                   "train.ckpt_every=0", "--set", "train.eval_every=0",
                   // One thread: two on a machine already busy made a run take minutes.
                   "--set", "run.threads=1", "--out", dir + "/sw"},
                  dir + "/sweep.log");
  ASSERT_TRUE(test::wait_for(
      [&] { return test::count_lines(dir + "/sw/seed=1/metrics.jsonl", "\"train\"") >= 1; }, 60))
      << test::read_text(dir + "/sweep.log");
  // Replaced as a build replaces it: a new file renamed over the old one.
  test::write_text(dir + "/stoch.new", "#!/bin/sh\nexit 3\n");
  test::fs::permissions(dir + "/stoch.new", test::fs::perms::owner_all);
  test::fs::rename(dir + "/stoch.new", dir + "/stoch");
  EXPECT_EQ(test::wait_exit(pid), 0) << test::read_text(dir + "/sweep.log");
  EXPECT_EQ(test::train_losses(dir + "/sw/seed=2").size(), 400u);
}

// One setup and seed trained twice (a value written two ways, now or by an earlier call) was
// counted by compare as two samples, narrowing its intervals.
TEST(Sweep, OneRunWrittenTwoWaysIsRefused) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(4));
  const std::string sweep = "sweep " + dir + "/c.yaml --seeds 1 --out " + dir + "/sw";
  auto r = test::run_stoch(sweep + " --grid model.bias=true,True");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--grid: model.bias=true,seed=1 and model.bias=True,seed=1 are one run"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(test::fs::exists(dir + "/sw"));
  ASSERT_EQ(test::run_stoch(sweep + " --grid optim.lr=0.001").code, 0);
  r = test::run_stoch(sweep + " --grid optim.lr=1e-3,0.002");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--grid: optim.lr=1e-3,seed=1 is the run " + dir +
                          "/sw/optim.lr=0.001,seed=1 already holds"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(test::fs::exists(dir + "/sw/optim.lr=0.002,seed=1"));
  // Another value is another run, beside the first.
  r = test::run_stoch(sweep + " --grid optim.lr=0.002");
  EXPECT_EQ(r.code, 0) << r.output;
  // compare refuses a copy of a run as a second sample.
  test::fs::copy(dir + "/sw/optim.lr=0.001,seed=1", dir + "/copy",
                 test::fs::copy_options::recursive);
  r = test::run_stoch("compare " + dir + "/sw " + dir + "/copy --python none");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(" are one setup with one run.seed (1): the same run twice, one sample, "
                          "not two (their configs agree)"),
            std::string::npos)
      << r.output;
  // A begun run is resumed or skipped, even beside a copy of it under another name.
  test::fs::copy(dir + "/sw/optim.lr=0.001,seed=1", dir + "/sw/optim.lr=1e-3,seed=1",
                 test::fs::copy_options::recursive);
  r = test::run_stoch(sweep + " --grid optim.lr=0.001");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("0 to do"), std::string::npos) << r.output;
  // A thread-scaling grid is no duplicate; the sweep says that compare takes it for one setup,
  // and compare says why it refuses it.
  r = test::run_stoch("sweep " + dir + "/c.yaml --seeds 1 --out " + dir +
                      "/threads --grid run.threads=1,2");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("--grid run.threads changes at most rounding"), std::string::npos)
      << r.output;
  r = test::run_stoch("compare " + dir + "/threads --python none");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("they differ only in run.threads, which change at most rounding"),
            std::string::npos)
      << r.output;
}

TEST(Sweep, BadGridValueFailsBeforeAnyRun) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(10));
  const auto r =
      test::run_stoch("sweep " + dir + "/c.yaml --grid optim.lr=0.01,fast --out " + dir + "/sw");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--grid optim.lr: optim.lr: expected a number"), std::string::npos)
      << r.output;
  EXPECT_FALSE(test::fs::exists(dir + "/sw"));
}

TEST(Sweep, ErrorsNameTheOptionThatGaveTheKey) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(10));
  auto r = test::run_stoch("sweep " + dir + "/c.yaml --grid optim.lrr=0.01 --out " + dir + "/sw");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--grid optim.lrr: unknown key optim.lrr (did you mean optim.lr?)"),
            std::string::npos)
      << r.output;
  r = test::run_stoch("sweep " + dir + "/c.yaml --set train.stepz=3 --grid optim.lr=0.01 --out " +
                      dir + "/sw");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--set train.stepz: unknown key"), std::string::npos) << r.output;
  EXPECT_FALSE(test::fs::exists(dir + "/sw"));
}

// A sweep's runs stop with it. kSteps is long enough that a run is still going when the test
// signals the sweep.
class SweepStops : public ::testing::Test {
 protected:
  static constexpr int kSteps = 400;
  void SetUp() override {
    dir_ = test::temp_dir("sweep");
    test::write_text(dir_ + "/c.yaml", test::tiny_lm_config(kSteps));
    args_ = {"sweep",   dir_ + "/c.yaml",
             "--grid",  "optim.lr=0.01,0.02",
             "--seeds", "2",
             "--jobs",  "2",
             "--set",   "train.ckpt_every=0",
             "--set",   "train.eval_every=0",
             "--out",   dir_ + "/sw"};
  }
  std::string run(const char* name) const { return dir_ + "/sw/" + name; }
  // Starts the sweep and waits until both of its first runs are training.
  pid_t start() {
    const pid_t pid = test::spawn_stoch(args_, dir_ + "/sweep.log");
    EXPECT_TRUE(test::wait_for(
        [&] {
          return test::count_lines(run(kFirst) + "/metrics.jsonl", "\"train\"") >= 5 &&
                 test::count_lines(run(kSecond) + "/metrics.jsonl", "\"train\"") >= 5;
        },
        60))
        << test::read_text(dir_ + "/sweep.log");
    return pid;
  }
  // Each of the first two runs was left by its process with a checkpoint of its last step.
  void expect_stopped_at_a_checkpoint() {
    for (const char* name : {kFirst, kSecond}) {
      ASSERT_TRUE(test::wait_for([&] { return !run_lock_owner(run(name)).has_value(); }, 60))
          << name << " is still being written: " << *run_lock_owner(run(name));
      const auto losses = test::train_losses(run(name));
      ASSERT_FALSE(losses.empty()) << name;
      const int64_t last = losses.rbegin()->first;
      EXPECT_LT(last, kSteps) << name;
      EXPECT_TRUE(test::fs::exists(test::checkpoint_dir(run(name), last) + "/manifest.json"))
          << name << ": no checkpoint of step " << last << "\n"
          << test::read_text(run(name) + ".console.log");
    }
    for (const char* name : {"optim.lr=0.02,seed=1", "optim.lr=0.02,seed=2"})
      EXPECT_FALSE(test::fs::exists(run(name))) << name << " was started after the signal";
  }
  std::string command() const {
    std::string cmd;
    for (const auto& a : args_) cmd += " '" + a + "'";
    return cmd;
  }
  // `sweep --status`'s summary line.
  std::string status() const {
    const auto r = test::run_stoch(command() + " --status");
    EXPECT_EQ(r.code, 0) << r.output;
    const auto at = r.output.find(dir_ + "/sw: 4 runs: ");
    return at == std::string::npos ? r.output : r.output.substr(at + (dir_ + "/sw: ").size());
  }
  // Running the same command again finishes every run.
  void expect_rerun_finishes() {
    const auto r = test::run_stoch(command());
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("resuming optim.lr=0.01,seed=1"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("resuming optim.lr=0.01,seed=2"), std::string::npos) << r.output;
    for (const char* name : {kFirst, kSecond, "optim.lr=0.02,seed=1", "optim.lr=0.02,seed=2"})
      EXPECT_EQ(test::train_losses(run(name)).size(), static_cast<size_t>(kSteps)) << name;
    EXPECT_EQ(status(),
              "4 runs: 4 finished, 0 running, 0 interrupted, 0 not started; 100% of their steps "
              "checkpointed\n");
  }

  static constexpr const char* kFirst = "optim.lr=0.01,seed=1";
  static constexpr const char* kSecond = "optim.lr=0.01,seed=2";
  std::string dir_;
  std::vector<std::string> args_;
};

TEST_F(SweepStops, SigtermCheckpointsTheRunningRunsAndStartsNoOther) {
  EXPECT_EQ(status(),
            "4 runs: 0 finished, 0 running, 0 interrupted, 4 not started; 0% of their steps "
            "checkpointed\nno run has logged a training step yet, so no estimate of the time "
            "left\n");
  EXPECT_FALSE(test::fs::exists(dir_ + "/sw"));  // --status starts nothing
  const pid_t pid = start();
  const std::string during = status();
  EXPECT_NE(during.find("4 runs: 0 finished, 2 running, 0 interrupted, 2 not started"),
            std::string::npos);
  EXPECT_NE(during.find("of training left, 2 at a time"), std::string::npos) << during;
  ::kill(pid, SIGTERM);
  EXPECT_EQ(test::wait_exit(pid), 143);
  // Every run has ended by the time the sweep returns.
  for (const char* name : {kFirst, kSecond}) EXPECT_FALSE(run_lock_owner(run(name))) << name;
  const std::string log = test::read_text(dir_ + "/sweep.log");
  EXPECT_NE(log.find("sweep: stopped by SIGTERM; 2 runs stopped at a checkpoint, 2 not started; "
                     "re-run the same command to continue"),
            std::string::npos)
      << log;
  ASSERT_NO_FATAL_FAILURE(expect_stopped_at_a_checkpoint());
  EXPECT_NE(status().find("4 runs: 0 finished, 0 running, 2 interrupted, 2 not started"),
            std::string::npos);
  expect_rerun_finishes();
}

// Runs signalled while still setting up end before their first checkpoint; the sweep's last line
// counts them apart from those it stopped at one, as the run folders show.
TEST_F(SweepStops, RunsStoppedBeforeTheirFirstCheckpointAreCountedApart) {
  const pid_t pid = test::spawn_stoch(args_, dir_ + "/sweep.log");
  ASSERT_TRUE(test::wait_for(
      [&] {
        return test::read_text(dir_ + "/sweep.log").find("starting " + std::string(kSecond)) !=
               std::string::npos;
      },
      60));
  ::kill(pid, SIGTERM);
  EXPECT_EQ(test::wait_exit(pid), 143);
  int kept = 0;
  for (const char* name : {kFirst, kSecond})
    kept += test::fs::exists(run(name) + "/checkpoints") &&
            !test::fs::is_empty(run(name) + "/checkpoints");
  const std::string log = test::read_text(dir_ + "/sweep.log");
  const std::string lost =
      kept == 2 ? "" : std::to_string(2 - kept) + " stopped before their first one, ";
  EXPECT_NE(log.find(stoch::str("sweep: stopped by SIGTERM; ", kept,
                                " runs stopped at a checkpoint, ", lost, "2 not started")),
            std::string::npos)
      << log;
}

// Killed outright, the sweep cannot pass anything on: its runs get SIGTERM from the kernel.
TEST_F(SweepStops, SigkillStillStopsTheRunsAtACheckpoint) {
  const pid_t pid = start();
  ::kill(pid, SIGKILL);
  EXPECT_EQ(test::wait_exit(pid), 128 + SIGKILL);
  expect_stopped_at_a_checkpoint();
}

}  // namespace
}  // namespace stoch
