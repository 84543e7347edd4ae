package io.moemesh.cli.router;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;

/**
 * What a failed call to the router means for the operator, as one line and the exit code every command uses (2 for
 * a bad request, INVALID_ARGUMENT; 3 when the router is unreachable, UNAVAILABLE; 1 otherwise). The codes are those
 * router.proto documents: ABORTED when an instance failed to load the new epoch (the router's message names it; the
 * previous epoch stays current), FAILED_PRECONDITION when the router's state forbids the call (a replan is already
 * running, no epoch published yet), PERMISSION_DENIED when the caller is not an operator identity.
 *
 * @param message  one line, without the command's prefix
 * @param exitCode the process exit code
 */
record RouterCallFailure(String message, int exitCode) {
    static final int BAD_INPUT = 2;
    static final int UNAVAILABLE = 3;

    static RouterCallFailure of(StatusRuntimeException e, String endpoint) {
        Status s = e.getStatus();
        String why = s.getDescription() == null ? s.getCode().toString() : s.getDescription().replace('\n', ' ');
        return switch (s.getCode()) {
            case UNAVAILABLE -> new RouterCallFailure("router not reachable at " + endpoint + " (" + why
                    + "); is the mesh up? (moemesh up starts one; --endpoint names another router)", UNAVAILABLE);
            case ABORTED -> new RouterCallFailure("the new epoch was not published, an instance failed to load it: "
                    + why, 1);
            case FAILED_PRECONDITION -> new RouterCallFailure("the router refused: " + why, 1);
            case INVALID_ARGUMENT -> new RouterCallFailure("the router refused the request: " + why, BAD_INPUT);
            case PERMISSION_DENIED -> new RouterCallFailure("not allowed: " + why, 1);
            case DEADLINE_EXCEEDED -> new RouterCallFailure("no answer from the router at " + endpoint
                    + " in time (moemesh router describe shows whether the epoch was published)", 1);
            default -> new RouterCallFailure(s.getCode() + ": " + why, 1);
        };
    }
}
