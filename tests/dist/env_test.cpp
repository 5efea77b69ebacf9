// Process identity and configuration from launcher variables (dist/env.h), and the user errors of
// World::init, in one process.
#include <gtest/gtest.h>

#include <map>

#include "dist/env.h"
#include "dist/world.h"

namespace drwkv::dist {
namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [shared](const char* name) -> const char* {
    auto it = shared->find(name);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
}

TEST(ProcessInfo, SingleProcessWithoutLauncher) {
  auto p = detect_process_info(env_of({}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->rank, 0);
  EXPECT_EQ(p->world_size, 1);
  EXPECT_EQ(p->launcher, "none");
}

TEST(ProcessInfo, OpenMpi) {
  auto p = detect_process_info(env_of({{"OMPI_COMM_WORLD_RANK", "5"},
                                       {"OMPI_COMM_WORLD_SIZE", "8"},
                                       {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                       {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"},
                                       {"OMPI_MCA_ess_base_jobid", "1234"}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->rank, 5);
  EXPECT_EQ(p->world_size, 8);
  EXPECT_EQ(p->local_rank, 1);
  EXPECT_EQ(p->local_world_size, 4);
  EXPECT_EQ(p->node_rank, 1);
  EXPECT_EQ(p->num_nodes, 2);
  EXPECT_EQ(p->launcher, "openmpi");
  EXPECT_EQ(p->run_id, "ompi-1234");
}

TEST(ProcessInfo, SlurmStepWithUnevenTasksPerNode) {
  auto p = detect_process_info(env_of({{"SLURM_PROCID", "6"},
                                       {"SLURM_STEP_NUM_TASKS", "7"},
                                       {"SLURM_LOCALID", "0"},
                                       {"SLURM_NODEID", "3"},
                                       {"SLURM_STEP_NUM_NODES", "4"},
                                       {"SLURM_STEP_TASKS_PER_NODE", "2(x3),1"},
                                       {"SLURM_JOB_ID", "99"},
                                       {"SLURM_STEP_ID", "0"}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->rank, 6);
  EXPECT_EQ(p->world_size, 7);
  EXPECT_EQ(p->node_rank, 3);
  EXPECT_EQ(p->local_world_size, 1);
  EXPECT_EQ(p->launcher, "slurm");
  EXPECT_EQ(p->run_id, "slurm-99.0");
}

TEST(ProcessInfo, MpirunInsideAnSbatchAllocationIsOpenMpiNotSlurm) {
  // the batch script's SLURM_PROCID=0 is inherited by every process mpirun starts
  auto p = detect_process_info(env_of({{"SLURM_PROCID", "0"},
                                       {"SLURM_NTASKS", "2"},
                                       {"SLURM_STEP_NUM_TASKS", "1"},
                                       {"OMPI_COMM_WORLD_RANK", "1"},
                                       {"OMPI_COMM_WORLD_SIZE", "2"},
                                       {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                       {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->launcher, "openmpi");
  EXPECT_EQ(p->rank, 1);
}

TEST(ProcessInfo, BatchScriptWithoutSrunIsASingleProcess) {
  auto p = detect_process_info(env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}, {"SLURM_JOB_ID", "7"}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->world_size, 1);
}

TEST(ProcessInfo, ExplicitOverrideWins) {
  auto p = detect_process_info(env_of({{"DRWKV_RANK", "2"}, {"DRWKV_WORLD_SIZE", "3"}, {"OMPI_COMM_WORLD_SIZE", "9"}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->launcher, "drwkv");
  EXPECT_EQ(p->rank, 2);
  EXPECT_EQ(p->world_size, 3);
}

TEST(ProcessInfo, BadVariablesNameTheVariableAndTheExpectation) {
  auto a = detect_process_info(env_of({{"OMPI_COMM_WORLD_RANK", "x"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                                       {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "1"}}));
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("OMPI_COMM_WORLD_RANK='x': expected an integer"), std::string::npos)
      << a.status();
  auto b = detect_process_info(env_of({{"DRWKV_RANK", "3"}, {"DRWKV_WORLD_SIZE", "3"}}));
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("DRWKV_RANK=3 is not below the world size DRWKV_WORLD_SIZE=3"),
            std::string::npos)
      << b.status();
  auto c = detect_process_info(env_of({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_LOCALID", "0"},
                                       {"SLURM_NODEID", "0"}, {"SLURM_STEP_NUM_NODES", "1"},
                                       {"SLURM_STEP_TASKS_PER_NODE", "2(3)"}}));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("SLURM_STEP_TASKS_PER_NODE='2(3)'"), std::string::npos) << c.status();
}

TEST(Options, RendezvousSpecs) {
  auto f = parse_rendezvous("file:/shared/rdzv");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->kind, RendezvousKind::File);
  EXPECT_EQ(f->path, "/shared/rdzv");
  auto t = parse_rendezvous("tcp://node-001:29500");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->host, "node-001");
  EXPECT_EQ(t->port, 29500);
  EXPECT_EQ(t->str(), "tcp://node-001:29500");
  struct Bad {
    const char* spec;
    const char* why;
  };
  for (Bad b : {Bad{"tcp://node-001", "no HOST:PORT"}, Bad{"tcp://h:99999", "PORT must be an integer in [1, 65535]"},
                Bad{"tcp://h:12x", "PORT must be"}, Bad{"file:relative/dir", "absolute path"},
                Bad{"file:", "no directory"}, Bad{"carrier-pigeon", "unknown form"}}) {
    auto r = parse_rendezvous(b.spec);
    ASSERT_FALSE(r.ok()) << b.spec;
    std::string msg(r.status().message());
    EXPECT_NE(msg.find(std::string("DRWKV_RENDEZVOUS='") + b.spec + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(b.why), std::string::npos) << msg;
  }
}

TEST(Options, FromEnvironment) {
  auto o = dist_options_from_env(env_of({{"DRWKV_BACKEND", "mpi"}, {"DRWKV_RENDEZVOUS", "tcp://a:1"},
                                         {"DRWKV_DIST_TIMEOUT", "30"}, {"DRWKV_WORLD_SIZE_EXPECTED", "4"}}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->backend, Backend::Mpi);
  EXPECT_EQ(o->rendezvous.kind, RendezvousKind::Tcp);
  EXPECT_EQ(o->collective_timeout_s, 30);
  EXPECT_EQ(o->expected_world_size, 4);
  auto bad = dist_options_from_env(env_of({{"DRWKV_DIST_TIMEOUT", "-1"}}));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("DRWKV_DIST_TIMEOUT='-1': expected a number of seconds > 0"),
            std::string::npos);
  auto backend = dist_options_from_env(env_of({{"DRWKV_BACKEND", "gloo"}}));
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.status().message().find("DRWKV_BACKEND='gloo': expected auto, nccl, mpi, self or none"),
            std::string::npos);
}

TEST(World, SingleProcessNeedsNoLauncherAndReportsWrongWorldSize) {
  auto w = World::init(DistOptions{}, env_of({}));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->world_size(), 1);
  EXPECT_STREQ((*w)->comm().backend_name(), "self");
  EXPECT_EQ((*w)->store(), nullptr);
  w->reset();

  DistOptions o;
  o.expected_world_size = 4;
  auto bad = World::init(o, env_of({}));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("expected world size 4"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("started 1 processes"), std::string::npos) << bad.status();
}

TEST(World, SrunWithoutRendezvousSaysWhatToSet) {
  DistOptions o;
  o.backend = Backend::None;
  auto w = World::init(o, env_of({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_LOCALID", "0"},
                                  {"SLURM_NODEID", "0"}}));
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("set DRWKV_RENDEZVOUS=file:DIR"), std::string::npos) << w.status();
}

}  // namespace
}  // namespace drwkv::dist
