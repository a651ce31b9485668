module sp_go_static

go 1.19
