# stack-lib.sh: what scripts/run.sh and scripts/run-cluster.sh share (sourced, POSIX sh).
# The caller sets $src (source tree) before sourcing it.

# alive PID: the process exists and is not a zombie (a child that exited stays a zombie
# until reaped, and kill -0 succeeds on a zombie).
alive() { [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }

# stop_pids PROG PID...: SIGTERM to each, then waits up to 10 s for each by PID and kills
# the ones still there. PROG names the caller in its messages.
stop_pids() {
    prog=$1
    shift
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        n=0
        while alive "$pid" && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
        if alive "$pid"; then
            echo "$prog: $pid did not stop in 10 s, killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

# nginx_conf DIR PORT NGINX_WORKERS SNIPPET: a private nginx configuration in DIR/nginx
# (nginx.conf, the project's upstream snippet with the sockets moved to DIR/command.sock and
# DIR/query.sock, the server snippet conf/nginx/SNIPPET, fastcgi_params), listening on
# 127.0.0.1:PORT, temporary files under DIR/nginx/tmp, document root DIR/www.
nginx_conf() {
    d=$1 lport=$2 nworkers=$3 snippet=$4
    mkdir -p "$d/nginx/tmp" "$d/www"
    sed -e "s#/run/eventfold/command.sock#$d/command.sock#" -e "s#/run/eventfold/query.sock#$d/query.sock#" \
        "$src/conf/nginx/eventfold-upstream.conf" > "$d/nginx/eventfold-upstream.conf"
    cp "$src/conf/nginx/$snippet" "$d/nginx/eventfold.conf"
    cp /etc/nginx/fastcgi_params "$d/nginx/fastcgi_params" ||
        { echo "no /etc/nginx/fastcgi_params (it comes with nginx-common)" >&2; return 1; }
    user=""
    [ "$(id -u)" = 0 ] && user="user root root;"
    cat > "$d/nginx/nginx.conf" <<NGINX
$user
worker_processes $nworkers;
error_log $d/nginx/error.log warn;
pid $d/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $d/nginx/tmp/body;
    fastcgi_temp_path $d/nginx/tmp/fastcgi;
    proxy_temp_path $d/nginx/tmp/proxy;
    uwsgi_temp_path $d/nginx/tmp/uwsgi;
    scgi_temp_path $d/nginx/tmp/scgi;
    include $d/nginx/eventfold-upstream.conf;
    server {
        listen 127.0.0.1:$lport;
        server_name localhost;
        root $d/www;
        include $d/nginx/eventfold.conf;
    }
}
NGINX
}
