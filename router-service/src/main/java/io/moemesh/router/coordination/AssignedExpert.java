package io.moemesh.router.coordination;

/** One expert of one layer an instance is told to hold (expert.v1 ExpertRef). */
public record AssignedExpert(int layer, int expert) {
}
