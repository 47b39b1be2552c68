// SPDX-License-Identifier: Apache-2.0
// WorkerPool: worker threads, each running the event loop of its own Ring.
#pragma once

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "common/status.h"
#include "io/ring.h"

namespace ecraid {

class WorkerPool {
public:
    // Starts `count` workers (0 means one per online CPU), each with a ring of `ring_entries`.
    static Result<std::unique_ptr<WorkerPool>> start(uint32_t count, uint32_t ring_entries = 256);
    ~WorkerPool();  // Stops and joins the workers.

    uint32_t size() const { return static_cast<uint32_t>(rings_.size()); }
    Ring& ring(uint32_t index) { return *rings_[index]; }
    // Runs `function` on the next worker in round-robin order.
    void post(std::function<void()> function);
    // Runs the task made by `make_task` on worker `index` and blocks the calling thread (not
    // a worker) until it finishes. Returns the task's result.
    int run_and_wait(uint32_t index, std::function<Task<int>()> make_task);
    // Asks every worker to finish its posted work and stop, then joins them.
    void stop();

private:
    WorkerPool() = default;
    std::vector<std::unique_ptr<Ring>> rings_;
    std::vector<std::thread> threads_;
    std::atomic<uint32_t> next_{0};
};

}  // namespace ecraid
