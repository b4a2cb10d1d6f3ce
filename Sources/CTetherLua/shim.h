#ifndef TETHER_LUA_SHIM_H
#define TETHER_LUA_SHIM_H
// The sandbox around Debian's Lua 5.4 (liblua5.4-dev) lives here, in C, because Lua reports
// errors with longjmp: the allocator, the instruction hook and the guarded pcall may raise
// errors, and no Swift frame may be between a raise and the pcall that catches it.
#include <lua5.4/lua.h>
#include <lua5.4/lualib.h>
#include <lua5.4/lauxlib.h>
#include <stdlib.h>
#include <time.h>

// Why a call was stopped.
enum { TETHER_LUA_RUNNING = 0, TETHER_LUA_OUT_OF_INSTRUCTIONS = 1, TETHER_LUA_OUT_OF_TIME = 2, TETHER_LUA_OUT_OF_MEMORY = 3 };

// Instructions between two checks of the budget and the clock.
#define TETHER_LUA_HOOK_EVERY 1000

typedef struct tether_lua_limits {
    size_t used;            // bytes the state holds now
    size_t ceiling;         // bytes it may hold
    long long instructions; // left in this call
    long long deadline_ns;  // CLOCK_MONOTONIC; 0: none
    int stopped;            // TETHER_LUA_*
} tether_lua_limits;

static inline long long tether_lua_now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static inline void *tether_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    tether_lua_limits *limits = (tether_lua_limits *)ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        limits->used -= old;
        free(ptr);
        return NULL;
    }
    if (nsize > old && limits->used + (nsize - old) > limits->ceiling) {
        limits->stopped = TETHER_LUA_OUT_OF_MEMORY;
        return NULL;
    }
    void *grown = realloc(ptr, nsize);
    if (grown) limits->used = limits->used - old + nsize;
    return grown;
}

static inline tether_lua_limits *tether_lua_limits_of(lua_State *L) {
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return (tether_lua_limits *)ud;
}

static inline void tether_lua_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    tether_lua_limits *limits = tether_lua_limits_of(L);
    limits->instructions -= TETHER_LUA_HOOK_EVERY;
    if (limits->instructions < 0) {
        limits->stopped = TETHER_LUA_OUT_OF_INSTRUCTIONS;
        luaL_error(L, "instruction budget exceeded");
    }
    if (limits->deadline_ns != 0 && tether_lua_now_ns() > limits->deadline_ns) {
        limits->stopped = TETHER_LUA_OUT_OF_TIME;
        luaL_error(L, "time limit exceeded");
    }
}

// pcall that cannot catch the sandbox's own stops: a script that wraps its loop in pcall is
// still stopped when its budget, time or memory runs out.
static inline int tether_lua_guarded_pcall(lua_State *L) {
    luaL_checkany(L, 1);
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (tether_lua_limits_of(L)->stopped != TETHER_LUA_RUNNING) return lua_error(L);
    lua_pushboolean(L, status == LUA_OK);
    lua_rotate(L, 1, 1);
    return lua_gettop(L);
}

// A state with the base, string, table, math and utf8 libraries only, no way to load
// bytecode or files, and the instruction hook set. NULL when memory is short.
static inline lua_State *tether_lua_new_sandbox(tether_lua_limits *limits) {
    lua_State *L = lua_newstate(tether_lua_alloc, limits);
    if (L == NULL) return NULL;
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    lua_settop(L, 0);
    static const char *const removed[] = {"dofile", "loadfile", "load", "collectgarbage", "print", "xpcall", "require", NULL};
    for (int i = 0; removed[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, removed[i]);
    }
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_settop(L, 0);
    lua_pushcfunction(L, tether_lua_guarded_pcall);
    lua_setglobal(L, "pcall");
    lua_sethook(L, tether_lua_hook, LUA_MASKCOUNT, TETHER_LUA_HOOK_EVERY);
    return L;
}

static inline int tether_lua_pcall(lua_State *L, int nargs, int nresults) {
    return lua_pcall(L, nargs, nresults, 0);
}

static inline void tether_lua_pop(lua_State *L, int n) { lua_settop(L, -(n)-1); }

// lua_gc is variadic, which Swift cannot call.
static inline void tether_lua_collect(lua_State *L) { lua_gc(L, LUA_GCCOLLECT); }
#endif
