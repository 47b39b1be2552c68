// SPDX-License-Identifier: Apache-2.0
#include "io/worker_pool.h"

#include <pthread.h>

#include <future>
#include <string>

namespace ecraid {

Result<std::unique_ptr<WorkerPool>> WorkerPool::start(uint32_t count, uint32_t ring_entries) {
    if (count == 0) count = std::max(1u, std::thread::hardware_concurrency());
    std::unique_ptr<WorkerPool> pool(new WorkerPool());
    for (uint32_t i = 0; i < count; ++i) {
        auto ring = Ring::create(ring_entries);
        if (!ring.ok()) return ring.status();
        pool->rings_.push_back(std::move(ring).value());
    }
    for (uint32_t i = 0; i < count; ++i) {
        Ring* ring = pool->rings_[i].get();
        pool->threads_.emplace_back([ring, i] {
            std::string name = "ecraid-w" + std::to_string(i);
            pthread_setname_np(pthread_self(), name.c_str());
            ring->run();
        });
    }
    return pool;
}

WorkerPool::~WorkerPool() { stop(); }

void WorkerPool::post(std::function<void()> function) {
    uint32_t index = next_.fetch_add(1, std::memory_order_relaxed) % size();
    rings_[index]->post(std::move(function));
}

int WorkerPool::run_and_wait(uint32_t index, std::function<Task<int>()> make_task) {
    std::promise<int> done;
    std::future<int> result = done.get_future();
    rings_[index]->post([&] {
        spawn([](std::function<Task<int>()> make, std::promise<int>* promise) -> Task<void> {
            int value = co_await make();
            promise->set_value(value);
        }(make_task, &done));
    });
    return result.get();
}

void WorkerPool::stop() {
    for (auto& ring : rings_) ring->stop();
    for (auto& thread : threads_) {
        if (thread.joinable()) thread.join();
    }
    threads_.clear();
}

}  // namespace ecraid
